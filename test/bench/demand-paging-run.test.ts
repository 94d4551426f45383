import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { DemandPagingOptions } from "../../src/bench/demand-paging/options.js";
import { type DemandPagingResult, runDemandPaging } from "../../src/bench/demand-paging/run.js";

/**
 * End-to-end runs of small configurations of every mode. runDemandPaging
 * itself throws unless every page of the measured run was installed exactly
 * once and the guest found each page's data (and, on its second pass, its
 * own markers) where it belongs; these tests check the figures around that.
 * Distinct remote pages for every test page, so that a page installed at
 * the wrong place shows.
 */

const MiB = 1 << 20;

async function run(options: Partial<DemandPagingOptions>): Promise<DemandPagingResult> {
  return runDemandPaging({ remotePages: 4096, ...options });
}

function checkResult(r: DemandPagingResult, vcpus: number, pages: number, faults = pages): void {
  assert.equal(r.verified, true);
  assert.equal(r.vcpus, vcpus);
  assert.equal(r.pages, pages);
  assert.equal(r.faults, faults, "one fault resolved per page");
  assert.equal(r.perVcpuPagesPerSecond.length, vcpus);
  assert.equal(r.perVcpuFaultLatencyUs.length, vcpus);
  assert.ok(r.pagesPerSecond > 0 && Number.isFinite(r.pagesPerSecond));
  for (const rate of r.perVcpuPagesPerSecond) assert.ok(rate > 0 && Number.isFinite(rate));
  const l = r.faultLatencyUs;
  assert.ok(l.p50 > 0 && l.p50 <= l.p99 && l.p99 <= l.max, JSON.stringify(l));
  assert.ok(r.limits.touchPagesPerSecond > 0);
  assert.ok(r.limits.copyInstallPagesPerSecond > 0);
  assert.ok(r.presentPassPagesPerSecond > 0);
}

describe("bench demand-paging end to end", () => {
  test("-k, attributes: each vCPU's thread resolves its own faults", async () => {
    const r = await run({ kvmUserfault: true, vcpus: 2, bytesPerVcpu: 1 * MiB });
    checkResult(r, 2, 512);
    assert.equal(r.mode, "kvm-userfault");
    assert.equal(r.userfaultApi, "attributes");
    assert.equal(r.limits.memory, "fresh");
  });

  test("-k, memslot bitmap; more vCPUs than threads", async () => {
    const r = await run({
      kvmUserfault: true,
      userfaultApi: "memslot-bitmap",
      vcpus: 3,
      workers: 2,
      bytesPerVcpu: 512 * 1024,
    });
    checkResult(r, 3, 384);
    assert.equal(r.userfaultApi, "memslot-bitmap");
    assert.equal(r.workers, 2);
  });

  test("-u MISSING: a userfaultfd and a reader per vCPU", async () => {
    const r = await run({ uffdMode: "MISSING", vcpus: 2, bytesPerVcpu: 1 * MiB });
    checkResult(r, 2, 512);
    assert.equal(r.mode, "uffd-MISSING");
    assert.equal(r.uffds, 2);
    assert.equal(r.readers, 2);
  });

  test("-u MISSING -a -r 2: one userfaultfd, two readers", async () => {
    const r = await run({
      uffdMode: "MISSING",
      singleUffd: true,
      readersPerUffd: 2,
      vcpus: 2,
      bytesPerVcpu: 1 * MiB,
    });
    checkResult(r, 2, 512);
    assert.equal(r.uffds, 1);
    assert.equal(r.readers, 2);
  });

  test("-u MINOR -a on shmem: the page cache holds the pages, CONTINUE maps them", async () => {
    const r = await run({
      uffdMode: "MINOR",
      singleUffd: true,
      backing: "shmem",
      vcpus: 2,
      bytesPerVcpu: 1 * MiB,
    });
    checkResult(r, 2, 512);
    assert.equal(r.mode, "uffd-MINOR");
    assert.equal(r.limits.memory, "prefaulted");
  });

  test("-o: every vCPU walks all of the memory, each page is still paged once", async () => {
    const k = await run({ kvmUserfault: true, overlap: true, vcpus: 2, bytesPerVcpu: 1 * MiB });
    assert.equal(k.verified, true);
    assert.equal(k.pages, 256);
    assert.ok(k.faults >= 256 && k.faults <= 512, `${k.faults} exits`);
    const u = await run({
      uffdMode: "MISSING",
      singleUffd: true,
      overlap: true,
      vcpus: 2,
      bytesPerVcpu: 1 * MiB,
    });
    checkResult(u, 2, 256);
  });

  test("-o on the memslot bitmap: vCPUs on two threads wait for each other's installs", async () => {
    const r = await run({
      kvmUserfault: true,
      userfaultApi: "memslot-bitmap",
      overlap: true,
      vcpus: 4,
      workers: 2,
      bytesPerVcpu: 1 * MiB,
    });
    assert.equal(r.verified, true);
    assert.equal(r.pages, 256);
    assert.ok(r.faults >= 256 && r.faults <= 4 * 256, `${r.faults} exits`);
  });

  test("-s shmem and -s guest_memfd with -k, both shapes", async () => {
    checkResult(await run({ kvmUserfault: true, backing: "shmem", bytesPerVcpu: 1 * MiB }), 1, 256);
    for (const userfaultApi of ["attributes", "memslot-bitmap"] as const) {
      const r = await run({
        kvmUserfault: true,
        userfaultApi,
        backing: "guest_memfd",
        vcpus: 2,
        bytesPerVcpu: 512 * 1024,
      });
      checkResult(r, 2, 256);
      assert.equal(r.backing, "guest_memfd");
    }
  });

  test("-k -u MINOR on guest_memfd: vCPU faults by KVM Userfault, userfaultfd beside it", async () => {
    const r = await run({
      kvmUserfault: true,
      uffdMode: "MINOR",
      backing: "guest_memfd",
      vcpus: 2,
      bytesPerVcpu: 512 * 1024,
    });
    checkResult(r, 2, 256);
    assert.equal(r.mode, "kvm-userfault");
    assert.equal(r.uffdMode, "MINOR");
    assert.equal(r.uffds, 2);
  });

  test("-s hugetlb-2M: -k installs 4 KiB pieces, -u MISSING copies whole huge pages", async () => {
    checkResult(
      await run({ kvmUserfault: true, backing: "hugetlb-2M", vcpus: 2, bytesPerVcpu: 2 * MiB }),
      2,
      1024,
    );
    const u = await run({ uffdMode: "MISSING", backing: "hugetlb-2M", bytesPerVcpu: 4 * MiB });
    checkResult(u, 1, 1024, 2);
  });

  test("-s hugetlb-1G with -k", async () => {
    const r = await run({ kvmUserfault: true, backing: "hugetlb-1G", bytesPerVcpu: 1024 * MiB });
    checkResult(r, 1, 262144);
  });

  test("-d: a delay per fault shows in the latency", async () => {
    const r = await run({ kvmUserfault: true, delayUs: 200, vcpus: 2, bytesPerVcpu: 256 * 1024 });
    checkResult(r, 2, 128);
    assert.ok(r.faultLatencyUs.p50 >= 200, `p50 ${r.faultLatencyUs.p50} us`);
  });

  test("a wrong page shows: the guest finds the data of another page and aborts", async () => {
    for (const options of [
      { kvmUserfault: true },
      { uffdMode: "MINOR", backing: "shmem", singleUffd: true },
    ] as const) {
      await assert.rejects(
        run({ ...options, bytesPerVcpu: 256 * 1024, corruptPage: 7 }),
        /the guest read .* at 0x100007000, expected .*: a wrong page was installed/,
      );
    }
  });
});
