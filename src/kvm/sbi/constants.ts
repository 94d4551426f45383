/** RISC-V SBI extension ids, function ids and error codes (SBI spec v2.0). */

export const SBI_SPEC_VERSION = (2 << 24) | 0;
/** SBI implementation id of KVM. */
export const SBI_IMPL_ID_KVM = 3;

export const EXT_LEGACY_SET_TIMER = 0x00;
export const EXT_LEGACY_CONSOLE_PUTCHAR = 0x01;
export const EXT_LEGACY_CONSOLE_GETCHAR = 0x02;
export const EXT_LEGACY_CLEAR_IPI = 0x03;
export const EXT_LEGACY_SEND_IPI = 0x04;
export const EXT_LEGACY_REMOTE_FENCE_I = 0x05;
export const EXT_LEGACY_REMOTE_SFENCE_VMA = 0x06;
export const EXT_LEGACY_REMOTE_SFENCE_VMA_ASID = 0x07;
export const EXT_LEGACY_SHUTDOWN = 0x08;

export const EXT_BASE = 0x10;
export const EXT_TIME = 0x54494d45;
export const EXT_IPI = 0x735049;
export const EXT_RFENCE = 0x52464e43;
export const EXT_HSM = 0x48534d;
export const EXT_SRST = 0x53525354;
export const EXT_DBCN = 0x4442434e;
export const EXT_STA = 0x535441;
/** Experimental extension space, forwarded to the VMM (KVM_EXIT_RISCV_SBI). */
export const EXT_EXPERIMENTAL_START = 0x08000000;
export const EXT_EXPERIMENTAL_END = 0x08ffffff;

export const SBI_SUCCESS = 0;
export const SBI_ERR_FAILED = -1;
export const SBI_ERR_NOT_SUPPORTED = -2;
export const SBI_ERR_INVALID_PARAM = -3;
export const SBI_ERR_DENIED = -4;
export const SBI_ERR_INVALID_ADDRESS = -5;
export const SBI_ERR_ALREADY_AVAILABLE = -6;
export const SBI_ERR_ALREADY_STARTED = -7;
export const SBI_ERR_ALREADY_STOPPED = -8;

export const BASE_GET_SPEC_VERSION = 0;
export const BASE_GET_IMPL_ID = 1;
export const BASE_GET_IMPL_VERSION = 2;
export const BASE_PROBE_EXTENSION = 3;
export const BASE_GET_MVENDORID = 4;
export const BASE_GET_MARCHID = 5;
export const BASE_GET_MIMPID = 6;

export const HSM_HART_START = 0;
export const HSM_HART_STOP = 1;
export const HSM_HART_GET_STATUS = 2;
export const HSM_HART_SUSPEND = 3;

export const RFENCE_REMOTE_FENCE_I = 0;
export const RFENCE_REMOTE_SFENCE_VMA = 1;
export const RFENCE_REMOTE_SFENCE_VMA_ASID = 2;

export const SRST_TYPE_SHUTDOWN = 0;
export const SRST_TYPE_COLD_REBOOT = 1;
export const SRST_TYPE_WARM_REBOOT = 2;
export const SRST_REASON_NONE = 0;
export const SRST_REASON_SYSTEM_FAILURE = 1;

export const STA_STEAL_TIME_SET_SHMEM = 0;
/** struct sbi_sta_struct: sequence (u32), flags (u32), steal (u64), preempted (u8). */
export const STA_RECORD_SIZE = 64;
