import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { CommanderError } from "commander";
import { DemandPagingUsageError } from "../../src/bench/demand-paging/options.js";
import { parseDemandPagingArgs } from "../../src/cli/commands/bench-demand-paging.js";

function refused(args: string[], pattern: RegExp): void {
  assert.throws(
    () => parseDemandPagingArgs(args),
    (error: unknown) => error instanceof DemandPagingUsageError && pattern.test(error.message),
    `${args.join(" ")} should be refused with ${pattern}`,
  );
}

function badLetter(args: string[], code: string): void {
  assert.throws(
    () => parseDemandPagingArgs(args),
    (error: unknown) => error instanceof CommanderError && error.code === code,
    `${args.join(" ")} should fail with ${code}`,
  );
}

describe("bench demand-paging options", () => {
  test("the selftest's letters", () => {
    const o = parseDemandPagingArgs(
      "-v 4 -b 2M -k -u MINOR -a -r 3 -o -s shmem -d 25 --json".split(" "),
    );
    assert.equal(o.vcpus, 4);
    assert.equal(o.bytesPerVcpu, 2 << 20);
    assert.equal(o.kvmUserfault, true);
    assert.equal(o.uffdMode, "MINOR");
    assert.equal(o.singleUffd, true);
    assert.equal(o.readersPerUffd, 3);
    assert.equal(o.overlap, true);
    assert.equal(o.backing, "shmem");
    assert.equal(o.delayUs, 25);
    assert.equal(o.json, true);
    assert.equal(o.userfaultApi, "attributes");
  });

  test("defaults, and the long names", () => {
    const o = parseDemandPagingArgs(["-k"]);
    assert.equal(o.vcpus, 1);
    assert.equal(o.bytesPerVcpu, 64 << 20);
    assert.equal(o.backing, "anonymous");
    assert.equal(o.uffdMode, null);
    assert.equal(o.json, false);
    const l = parseDemandPagingArgs(
      "--vcpus 2 --kvm-userfault --userfault-api memslot-bitmap --backing guest_memfd".split(" "),
    );
    assert.equal(l.userfaultApi, "memslot-bitmap");
    assert.equal(l.backing, "guest_memfd");
  });

  test("bad letters and values", () => {
    badLetter(["-k", "-x"], "commander.unknownOption");
    badLetter(["-k", "-v"], "commander.optionMissingArgument");
    badLetter(["-k", "-v", "two"], "commander.invalidArgument");
    badLetter(["-k", "-b", "lots"], "commander.invalidArgument");
    badLetter(["-k", "-d", "1.5"], "commander.invalidArgument");
    badLetter(["-k", "-v", "0"], "commander.invalidArgument");
    refused(["-k", "-v", "257"], /-v/);
    refused(["-u", "SOMETIMES"], /MISSING or MINOR/);
    refused(["-k", "-s", "floppy"], /-s: backing must be one of/);
    refused(["-k", "--userfault-api", "ioctl"], /attributes or memslot-bitmap/);
    refused(["-k", "-b", "6K"], /multiple of/);
    refused(["-k", "-s", "hugetlb-2M", "-b", "1M"], /multiple of the hugetlb-2M page size/);
    refused(["-k", "-r", "65"], /-r: readers/);
    refused(["-k", "--remote-pages", "3"], /power of two/);
  });

  test("combinations that cannot work are refused with the reason", () => {
    refused([], /nothing demand-pages/);
    refused(["-u", "MISSING", "-s", "guest_memfd"], /userfaultfd never sees it/);
    refused(["-u", "MINOR", "-s", "guest_memfd"], /stage-2 fault asks the guest_memfd/);
    refused(["-u", "MINOR"], /-u MINOR needs shared memory/);
    refused(["-k", "-u", "MISSING"], /the combination is -k -u MINOR/);
    refused(["-u", "MISSING", "-o", "-v", "2"], /-o with -u needs -a/);
    refused(["-u", "MISSING", "--prefault"], /never missing/);
    refused(["-k", "-v", "64", "-b", "2G"], /GiB of test memory/);
  });

  test("the combinations that work", () => {
    assert.equal(parseDemandPagingArgs("-k -u MINOR -s guest_memfd".split(" ")).uffdMode, "MINOR");
    assert.equal(parseDemandPagingArgs("-u MISSING -o -a -v 2".split(" ")).overlap, true);
    assert.equal(parseDemandPagingArgs("-u MINOR -s shmem --prefault".split(" ")).prefault, true);
    assert.equal(parseDemandPagingArgs("-k -v 64 -b 128M".split(" ")).vcpus, 64);
  });
});
