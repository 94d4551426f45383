import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PAGE_SIZE } from "../../src/host/host-memory.js";
import { expectedRun } from "../../src/migration/machine/dirtier.js";
import {
  decodeVcpuStates,
  encodeVcpuStates,
  MigratableVm,
  type MigratableVmSpec,
} from "../../src/migration/machine/migratable-vm.js";

const SPEC: MigratableVmSpec = {
  memBytes: 8 << 20,
  vcpus: 2,
  iterations: 300,
  storesPerIteration: 16,
  backing: "guest_memfd",
  pageSize: 4096,
};

describe("the migration workload VM", () => {
  test("the dirtier's checksums match the native model", { timeout: 30_000 }, async () => {
    const { vm, start } = MigratableVm.boot(SPEC);
    try {
      await vm.start(start);
      assert.deepEqual(await vm.finished(), expectedRun(SPEC).checksums);
    } finally {
      await vm.close();
    }
  });

  test(
    "paused at a ucall, copied page by page and restarted in another VM: same checksums",
    { timeout: 30_000 },
    async () => {
      const spec: MigratableVmSpec = { ...SPEC, backing: "shmem", iterations: 2000 };
      const { vm: a, start } = MigratableVm.boot(spec);
      const b = MigratableVm.incoming(spec);
      try {
        await a.start(start);
        while (a.progress() < 50) await new Promise((r) => setTimeout(r, 1));
        const saved = decodeVcpuStates(encodeVcpuStates(await a.pause()), spec.vcpus);
        assert.ok(saved.every((v) => !v.done));
        const page = Buffer.alloc(PAGE_SIZE);
        for (let i = 0; i < a.pages.pages; i++) {
          if (a.pages.copyOut(i, page)) b.pages.install(i, page);
        }
        await b.start(saved);
        assert.deepEqual(await b.finished(), expectedRun(spec).checksums);
      } finally {
        await a.close();
        await b.close();
      }
    },
  );
});
