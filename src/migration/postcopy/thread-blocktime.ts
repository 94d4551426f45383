/**
 * Post-copy blocktime of vCPUs that block inside the kernel rather than
 * exit to the VMM (userfaultfd, asynchronous userfaults), measured as
 * QEMU's postcopy-blocktime does it from the fault messages: a vCPU thread
 * named by a message is blocked from the moment the message is read until
 * its page is installed; "overlapped" is the time all vCPUs were blocked at
 * once. Messages that name no vCPU thread are not counted.
 */
export class ThreadBlocktime {
  private readonly blockedOn: Int32Array;
  private readonly since: Float64Array;
  readonly perVcpu: Float64Array;
  private blocked = 0;
  private allSince = 0;
  overlapped = 0;

  constructor(readonly vcpus: number) {
    this.blockedOn = new Int32Array(vcpus).fill(-1);
    this.since = new Float64Array(vcpus);
    this.perVcpu = new Float64Array(vcpus);
  }

  fault(vcpu: number, page: number, now: number): void {
    if (vcpu < 0 || vcpu >= this.vcpus || this.blockedOn[vcpu] !== -1) return;
    this.blockedOn[vcpu] = page;
    this.since[vcpu] = now;
    if (++this.blocked === this.vcpus) this.allSince = now;
  }

  installed(page: number, now: number): void {
    if (this.blocked === 0) return;
    for (let v = 0; v < this.vcpus; v++) {
      if (this.blockedOn[v] !== page) continue;
      this.perVcpu[v] += now - this.since[v];
      if (this.blocked === this.vcpus) this.overlapped += now - this.allSince;
      this.blocked--;
      this.blockedOn[v] = -1;
    }
  }
}
