/**
 * Failures of the system-call surface (host) and of the hypervisor UAPI
 * (kvm), as errno names that mean what they mean in Linux and KVM.
 */
export type Errno =
  | "EINVAL"
  | "EEXIST"
  | "EFAULT"
  | "ENOENT"
  | "EBADF"
  | "EHWPOISON"
  | "E2BIG"
  | "ENOMEM"
  | "EBUSY"
  | "EPERM"
  | "ENOSPC"
  | "EAGAIN"
  | "EIO"
  | "EINTR"
  | "ESRCH"
  | "ENOTTY"
  | "EMFILE"
  | "ENODEV"
  | "EFBIG";

/** A failed call: `errno` is what the ioctl or system call would have returned, negated. */
export class ErrnoError extends Error {
  constructor(
    readonly errno: Errno,
    message: string,
  ) {
    super(`${errno}: ${message}`);
    this.name = "ErrnoError";
  }
}

export function fail(errno: Errno, message: string): never {
  throw new ErrnoError(errno, message);
}
