import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  CAP_GUEST_MEMFD,
  CAP_MEMORY_ATTRIBUTES,
  CAP_USER_MEMORY2,
  CAP_USERFAULT,
  MEMORY_ATTRIBUTE_PRIVATE,
  MEMORY_ATTRIBUTE_USERFAULT,
  USERFAULT_ASYNC_ALL,
  USERFAULT_DISABLE,
  USERFAULT_ENABLE,
} from "../../src/kvm/uapi.js";
import { assertErrno, createTestVm, UCALL } from "./support.js";

const IDLE = `_start: ${UCALL}\n j _start`;

describe("capabilities and enabling userfault", () => {
  test("the system reports USERFAULT and the attribute; a VM only once enabled", () => {
    const { host, kvm, vm } = createTestVm(IDLE);
    assert.equal(kvm.checkExtension(CAP_USERFAULT), 1);
    assert.equal(kvm.checkExtension(CAP_GUEST_MEMFD), 1);
    assert.equal(kvm.checkExtension(CAP_USER_MEMORY2), 1);
    assert.equal(
      kvm.checkExtension(CAP_MEMORY_ATTRIBUTES),
      MEMORY_ATTRIBUTE_PRIVATE | MEMORY_ATTRIBUTE_USERFAULT,
    );
    assert.equal(vm.checkExtension(CAP_MEMORY_ATTRIBUTES), MEMORY_ATTRIBUTE_PRIVATE);
    const eventfd = host.eventfd();
    vm.enableCap({ cap: CAP_USERFAULT, flags: 0, args: [USERFAULT_ENABLE, eventfd] });
    assert.equal(
      vm.checkExtension(CAP_MEMORY_ATTRIBUTES),
      MEMORY_ATTRIBUTE_PRIVATE | MEMORY_ATTRIBUTE_USERFAULT,
    );
    vm.enableCap({ cap: CAP_USERFAULT, flags: 0, args: [USERFAULT_DISABLE, 0] });
    assert.equal(vm.checkExtension(CAP_MEMORY_ATTRIBUTES), MEMORY_ATTRIBUTE_PRIVATE);
  });

  test("option and flag errors are EINVAL, a second enable EEXIST, a bad eventfd EBADF", () => {
    const { host, vm, gmemFd } = createTestVm(IDLE);
    const eventfd = host.eventfd();
    const enable = (options: number, fd = eventfd, flags = 0) =>
      vm.enableCap({ cap: CAP_USERFAULT, flags, args: [options, fd] });
    assertErrno(() => enable(0), "EINVAL");
    assertErrno(() => enable(USERFAULT_ENABLE | USERFAULT_DISABLE), "EINVAL");
    assertErrno(() => enable(USERFAULT_ENABLE | (1 << 9)), "EINVAL");
    assertErrno(() => enable(USERFAULT_DISABLE | USERFAULT_ASYNC_ALL), "EINVAL");
    assertErrno(() => enable(USERFAULT_ENABLE, eventfd, 1), "EINVAL");
    assertErrno(() => enable(USERFAULT_ENABLE, 999), "EBADF");
    assertErrno(() => enable(USERFAULT_ENABLE, gmemFd), "EBADF");
    assert.equal(vm.userfault.enabled, false, "failed calls change nothing");
    enable(USERFAULT_ENABLE);
    assertErrno(() => enable(USERFAULT_ENABLE), "EEXIST");
    enable(USERFAULT_DISABLE);
    enable(USERFAULT_DISABLE);
    enable(USERFAULT_ENABLE | USERFAULT_ASYNC_ALL);
    assert.equal(vm.userfault.options & USERFAULT_ASYNC_ALL, USERFAULT_ASYNC_ALL);
  });

  test("readUserfault is ENOENT when userfault is off or nothing is pending", () => {
    const { host, vm } = createTestVm(IDLE);
    assertErrno(() => vm.readUserfault(), "ENOENT");
    vm.enableCap({ cap: CAP_USERFAULT, flags: 0, args: [USERFAULT_ENABLE, host.eventfd()] });
    assertErrno(() => vm.readUserfault(), "ENOENT");
  });
});
