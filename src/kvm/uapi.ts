/**
 * Constants of the hypervisor UAPI, named as KVM names them (KVM_CAP_*,
 * KVM_MEMORY_ATTRIBUTE_*, KVM_MEM_*, KVM_EXIT_*), with the values of Linux's
 * include/uapi/linux/kvm.h where one exists.
 */

/** Capabilities for checkExtension (KVM_CAP_*). */
export const CAP_READONLY_MEM = 31;
export const CAP_MANUAL_DIRTY_LOG_PROTECT2 = 168;
export const CAP_DIRTY_LOG = 1000;
export const CAP_USER_MEMORY2 = 231;
export const CAP_MEMORY_FAULT_INFO = 232;
export const CAP_MEMORY_ATTRIBUTES = 233;
export const CAP_GUEST_MEMFD = 234;
export const CAP_USERFAULT = 236;
export const CAP_NR_VCPUS = 9;
export const CAP_MAX_VCPUS = 66;
export const CAP_NR_MEMSLOTS = 10;

/** Memory attributes (KVM_MEMORY_ATTRIBUTE_*). */
export const MEMORY_ATTRIBUTE_PRIVATE = 1 << 3;
export const MEMORY_ATTRIBUTE_USERFAULT = 1 << 4;

/** enableCap(USERFAULT) options, args[0]. */
export const USERFAULT_ENABLE = 1 << 0;
export const USERFAULT_DISABLE = 1 << 1;
/** faultline's addition: vCPU faults also go to the asynchronous queue. */
export const USERFAULT_ASYNC_ALL = 1 << 2;

/** Memslot flags (KVM_MEM_*). */
export const MEM_LOG_DIRTY_PAGES = 1 << 0;
export const MEM_READONLY = 1 << 1;
export const MEM_GUEST_MEMFD = 1 << 2;
/** The later upstream shape: a VMM-owned bitmap of userfault pages. */
export const MEM_USERFAULT = 1 << 3;

/** createGuestMemfd flags. */
export const GUEST_MEMFD_FLAG_MMAP = 1 << 0;
export const GUEST_MEMFD_FLAG_HUGE_2M = 1 << 1;
export const GUEST_MEMFD_FLAG_HUGE_1G = 1 << 2;

/** Exit reasons (KVM_EXIT_*). */
export const EXIT_MMIO = 6;
export const EXIT_INTERNAL_ERROR = 17;
export const EXIT_SYSTEM_EVENT = 24;
export const EXIT_RISCV_SBI = 35;
export const EXIT_MEMORY_FAULT = 39;

/** memoryFault.flags (KVM_MEMORY_EXIT_FLAG_*). */
export const MEMORY_EXIT_FLAG_PRIVATE = 1 << 3;
export const MEMORY_EXIT_FLAG_USERFAULT = 1 << 4;
/** faultline reports the access too, as the RFC's exit preparation knows it. */
export const MEMORY_EXIT_FLAG_WRITE = 1 << 0;
export const MEMORY_EXIT_FLAG_EXEC = 1 << 1;

/** systemEvent.type (KVM_SYSTEM_EVENT_*). */
export const SYSTEM_EVENT_SHUTDOWN = 1;
export const SYSTEM_EVENT_RESET = 2;
export const SYSTEM_EVENT_CRASH = 3;

/** internal.suberror (KVM_INTERNAL_ERROR_*). */
export const INTERNAL_ERROR_EMULATION = 1;

export const MAX_VCPUS = 256;
export const MAX_MEMSLOTS = 32;

/**
 * True unless `value` is a flag word of `valid` bits only. Flag words are
 * u64s in KVM, and JS bit operators see only the low 32 bits: every flag is
 * below bit 31, so any larger value has an unknown bit.
 */
export function hasInvalidFlags(value: number, valid: number): boolean {
  return !Number.isInteger(value) || value < 0 || value > 0x7fff_ffff || (value & ~valid) !== 0;
}
