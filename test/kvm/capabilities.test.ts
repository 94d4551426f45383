import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { FILE_EVENTFD, OBJ_REFS } from "../../src/host/files.js";
import {
  CAP_DIRTY_LOG,
  CAP_GUEST_MEMFD,
  CAP_MANUAL_DIRTY_LOG_PROTECT2,
  CAP_MAX_VCPUS,
  CAP_MEMORY_ATTRIBUTES,
  CAP_MEMORY_FAULT_INFO,
  CAP_NR_MEMSLOTS,
  CAP_NR_VCPUS,
  CAP_READONLY_MEM,
  CAP_USER_MEMORY2,
  CAP_USERFAULT,
  MAX_MEMSLOTS,
  MAX_VCPUS,
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
    // args[0] is a u64: bits past the 32 a JS bit operator sees are unknown too.
    assertErrno(() => enable(USERFAULT_ENABLE + 2 ** 32), "EINVAL");
    assertErrno(() => enable(USERFAULT_ENABLE + 2 ** 31), "EINVAL");
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

  test("every capability of section 3 is reported, on the system and on a VM; unknown ones are 0", () => {
    const { kvm, vm } = createTestVm(IDLE);
    for (const cap of [
      CAP_USERFAULT,
      CAP_GUEST_MEMFD,
      CAP_USER_MEMORY2,
      CAP_MEMORY_FAULT_INFO,
      CAP_READONLY_MEM,
      CAP_DIRTY_LOG,
      CAP_MANUAL_DIRTY_LOG_PROTECT2,
    ]) {
      assert.equal(kvm.checkExtension(cap), 1, `system cap ${cap}`);
      assert.equal(vm.checkExtension(cap), 1, `VM cap ${cap}`);
    }
    assert.equal(vm.checkExtension(CAP_NR_MEMSLOTS), MAX_MEMSLOTS);
    assert.equal(vm.checkExtension(CAP_MAX_VCPUS), MAX_VCPUS);
    assert.equal(kvm.checkExtension(CAP_NR_VCPUS), MAX_VCPUS);
    for (const cap of [0, 7777, -1]) {
      assert.equal(kvm.checkExtension(cap), 0);
      assert.equal(vm.checkExtension(cap), 0);
    }
    assertErrno(() => vm.enableCap({ cap: CAP_GUEST_MEMFD, flags: 0, args: [] }), "EINVAL");
    assertErrno(() => vm.enableCap({ cap: 7777, flags: 0, args: [] }), "EINVAL");
  });

  test("disabling releases the eventfd: a later enable may use another; the old one is never signalled", () => {
    const { host, vm } = createTestVm(IDLE);
    const first = host.eventfd();
    const object = host.files.lookup(first, FILE_EVENTFD);
    const refs = () => Atomics.load(host.memory.arenaI32, (object >> 2) + OBJ_REFS);
    assert.equal(refs(), 1, "the descriptor's reference");
    vm.enableCap({ cap: CAP_USERFAULT, flags: 0, args: [USERFAULT_ENABLE, first] });
    assert.equal(refs(), 2, "the userfault context holds one");
    vm.enableCap({ cap: CAP_USERFAULT, flags: 0, args: [USERFAULT_DISABLE, 0] });
    assert.equal(refs(), 1, "disable dropped it");
    host.close(first);
    assertErrno(
      () => vm.enableCap({ cap: CAP_USERFAULT, flags: 0, args: [USERFAULT_ENABLE, first] }),
      "EBADF",
    );
    const second = host.eventfd();
    vm.enableCap({ cap: CAP_USERFAULT, flags: 0, args: [USERFAULT_ENABLE, second] });
    assert.equal(vm.userfault.enabled, true);
  });

  test("readUserfault is ENOENT when userfault is off or nothing is pending", () => {
    const { host, vm } = createTestVm(IDLE);
    assertErrno(() => vm.readUserfault(), "ENOENT");
    vm.enableCap({ cap: CAP_USERFAULT, flags: 0, args: [USERFAULT_ENABLE, host.eventfd()] });
    assertErrno(() => vm.readUserfault(), "ENOENT");
  });
});
