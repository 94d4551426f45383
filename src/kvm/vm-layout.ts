import { MAX_MEMSLOTS, MAX_VCPUS } from "./uapi.js";

/**
 * Where a VM's state lives in its arena record, as int32 word offsets (and
 * float64 slot offsets for the memslot table). One place for the layout, so
 * that every thread attached to the VM reads the same words.
 */

export const VM_SLOTS_LOCK = 0;
export const VM_MMU_LOCK = 1;
/** Seqlock of the memslot table: odd while it changes. */
export const VM_MEMSLOT_SEQ = 2;
/** Bumped by every stage-2 invalidation; the fault path retries on a change. */
export const VM_MMU_SEQ = 3;
export const VM_DESTROYED = 4;
export const VM_VCPU_COUNT = 5;
export const VM_STAGE2_ROOT = 6;
/** Three words: stage-2 leaves at 4 KiB, 2 MiB, 1 GiB. */
export const VM_STAGE2_STATS = 7;
export const VM_ATTR_USERFAULT = 10;
export const VM_ATTR_PRIVATE = 11;
/** The system event (SRST) that stops every vCPU: type + 1 (0 = none) and reason. */
export const VM_SYSTEM_EVENT = 12;
export const VM_SYSTEM_EVENT_REASON = 13;
/** Float64 (words 14-15): host wall-clock ms at which guest time 0 is, shared by all vCPUs. */
export const VM_TIME_EPOCH = 14;
/** KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 enabled: getDirtyLog leaves clearing to clearDirtyLog. */
export const VM_MANUAL_DIRTY_PROTECT = 24;
/** Arena offset of the VM's in-kernel MMIO bus (io-bus.ts). */
export const VM_IO_BUS = 25;
/**
 * Arena offset of the fault slots: FAULT_SLOTS cache lines, one per thread
 * that takes stage-2 faults, each [counter, waiters]; the counter is odd
 * while that thread installs a leaf (see fault.ts).
 */
export const VM_FAULT_SLOTS = 26;
/** Fault slots handed out so far (a thread takes one at its first fault). */
export const VM_FAULT_SLOT_NEXT = 27;
export const FAULT_SLOTS = 64;
export const FAULT_SLOT_WORDS = 16;

// Userfault context.
export const VM_UF_ENABLED = 16;
export const VM_UF_OPTIONS = 17;
export const VM_UF_EVENTFD = 18;
/** Accessors currently inside the userfault context (disable waits for 0). */
export const VM_UF_USERS = 19;
/** Bumped by enable and disable: sleepers wake and re-check. */
export const VM_UF_GENERATION = 20;
export const VM_UF_QUEUE_LOCK = 21;
export const VM_UF_QUEUE_COUNT = 22;
export const VM_UF_QUEUE_HEAD = 23;

/** Wait-queue words, hashed by gfn: clearing a bit bumps and notifies its word. */
export const VM_UF_WAIT = 64;
export const VM_UF_WAIT_WORDS = 64;
export const VM_UF_QUEUE = VM_UF_WAIT + VM_UF_WAIT_WORDS;
export const VM_UF_QUEUE_CAPACITY = 1024;

/** Arena offsets of the vCPU records, by vCPU id (0 = not created). */
export const VM_VCPUS = VM_UF_QUEUE + VM_UF_QUEUE_CAPACITY;

/** The memslot table starts at this word (8-byte aligned), MEMSLOT_FIELDS float64s per slot. */
export const VM_MEMSLOTS = VM_VCPUS + MAX_VCPUS;
export const MEMSLOT_FIELDS = 10;
export const MS_PRESENT = 0;
export const MS_FLAGS = 1;
export const MS_BASE_GFN = 2;
export const MS_NPAGES = 3;
export const MS_USERSPACE_ADDR = 4;
/** Arena offset of the guest_memfd object backing the slot, or 0. */
export const MS_GMEM = 5;
export const MS_GMEM_OFFSET = 6;
/** Arena offset of the slot's dirty bitmap (a GfnBitmap), or 0. */
export const MS_DIRTY_BITMAP = 7;
/** hva of the VMM-owned userfault bitmap (the upstream MEM_USERFAULT shape), or 0. */
export const MS_USERFAULT_BITMAP = 8;
/** guest_memfd file descriptor as given, to report it back. */
export const MS_GMEM_FD = 9;

export const VM_RECORD_BYTES = (VM_MEMSLOTS + MAX_MEMSLOTS * MEMSLOT_FIELDS * 2) * 4;
