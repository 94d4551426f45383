/**
 * Constants of the virtio 1.2 specification used by faultline's in-kernel
 * devices: the virtio-mmio transport (version 2), device status bits,
 * feature bits, split-virtqueue flags, and the block device's requests.
 */

/** virtio-mmio register offsets (4.2.2). */
export const MMIO_MAGIC_VALUE = 0x000;
export const MMIO_VERSION = 0x004;
export const MMIO_DEVICE_ID = 0x008;
export const MMIO_VENDOR_ID = 0x00c;
export const MMIO_DEVICE_FEATURES = 0x010;
export const MMIO_DEVICE_FEATURES_SEL = 0x014;
export const MMIO_DRIVER_FEATURES = 0x020;
export const MMIO_DRIVER_FEATURES_SEL = 0x024;
export const MMIO_QUEUE_SEL = 0x030;
export const MMIO_QUEUE_NUM_MAX = 0x034;
export const MMIO_QUEUE_NUM = 0x038;
export const MMIO_QUEUE_READY = 0x044;
export const MMIO_QUEUE_NOTIFY = 0x050;
export const MMIO_INTERRUPT_STATUS = 0x060;
export const MMIO_INTERRUPT_ACK = 0x064;
export const MMIO_STATUS = 0x070;
export const MMIO_QUEUE_DESC_LOW = 0x080;
export const MMIO_QUEUE_DESC_HIGH = 0x084;
export const MMIO_QUEUE_DRIVER_LOW = 0x090;
export const MMIO_QUEUE_DRIVER_HIGH = 0x094;
export const MMIO_QUEUE_DEVICE_LOW = 0x0a0;
export const MMIO_QUEUE_DEVICE_HIGH = 0x0a4;
export const MMIO_SHM_SEL = 0x0ac;
export const MMIO_SHM_LEN_LOW = 0x0b0;
export const MMIO_SHM_LEN_HIGH = 0x0b4;
export const MMIO_SHM_BASE_LOW = 0x0b8;
export const MMIO_SHM_BASE_HIGH = 0x0bc;
export const MMIO_CONFIG_GENERATION = 0x0fc;
export const MMIO_CONFIG = 0x100;
/** The register window of one virtio-mmio device. */
export const MMIO_WINDOW_BYTES = 0x200;

/** "virt" little-endian. */
export const MMIO_MAGIC = 0x74726976;
export const MMIO_VERSION_2 = 2;
/** faultline's vendor id: "FLTL" little-endian. */
export const VENDOR_ID_FAULTLINE = 0x4c544c46;

/** InterruptStatus bits. */
export const INTERRUPT_USED_BUFFER = 1 << 0;
export const INTERRUPT_CONFIG_CHANGE = 1 << 1;

/** Device status bits (2.1). */
export const STATUS_ACKNOWLEDGE = 1;
export const STATUS_DRIVER = 2;
export const STATUS_DRIVER_OK = 4;
export const STATUS_FEATURES_OK = 8;
export const STATUS_DEVICE_NEEDS_RESET = 64;
export const STATUS_FAILED = 128;

/** Device ids (5). */
export const VIRTIO_ID_BLOCK = 2;

/** Reserved feature bits (6), as bit numbers. */
export const F_INDIRECT_DESC = 28;
export const F_EVENT_IDX = 29;
export const F_VERSION_1 = 32;

/** Split virtqueue (2.7). */
export const DESC_F_NEXT = 1;
export const DESC_F_WRITE = 2;
export const DESC_F_INDIRECT = 4;
export const DESC_BYTES = 16;
export const AVAIL_F_NO_INTERRUPT = 1;
export const USED_F_NO_NOTIFY = 1;
export const USED_ELEM_BYTES = 8;
/** The largest queue size a split virtqueue may have. */
export const SPLIT_QUEUE_MAX = 32768;

/** Block device feature bits (5.2.3), as bit numbers. */
export const BLK_F_SIZE_MAX = 1;
export const BLK_F_SEG_MAX = 2;
export const BLK_F_GEOMETRY = 4;
export const BLK_F_RO = 5;
export const BLK_F_BLK_SIZE = 6;
export const BLK_F_FLUSH = 9;
export const BLK_F_TOPOLOGY = 10;
export const BLK_F_CONFIG_WCE = 11;

/** struct virtio_blk_config offsets (5.2.4). */
export const BLK_CONFIG_CAPACITY = 0x00;
export const BLK_CONFIG_SIZE_MAX = 0x08;
export const BLK_CONFIG_SEG_MAX = 0x0c;
export const BLK_CONFIG_BLK_SIZE = 0x14;
/** Config bytes faultline's block device defines (up to num_queues and padding). */
export const BLK_CONFIG_BYTES = 0x40;

/** Request types (5.2.6). */
export const BLK_T_IN = 0;
export const BLK_T_OUT = 1;
export const BLK_T_FLUSH = 4;
export const BLK_T_GET_ID = 8;
/** The request header: type (le32), reserved (le32), sector (le64). */
export const BLK_HEADER_BYTES = 16;
export const BLK_ID_BYTES = 20;
export const SECTOR_SIZE = 512;

/** Request status byte values. */
export const BLK_S_OK = 0;
export const BLK_S_IOERR = 1;
export const BLK_S_UNSUPP = 2;
