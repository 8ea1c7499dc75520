/**
 * GENERATED FILE, DO NOT EDIT.
 * Generated from schema/domain.schema.json by scripts/gen-config-types.mjs;
 * edit the schema and rerun the script instead.
 */

/**
 * A virtkit domain (virtual machine or container) configuration: the JSON counterpart of libvirt's domain XML, with camelCase keys.
 */
export interface DomainConfig {
  /**
   * URI of this schema, for editors; ignored by virtkit.
   */
  $schema?: string;
  /**
   * Domain name, unique per connection. 1 to 64 characters from [A-Za-z0-9_.-], starting with a letter or digit, so it is safe to use as a file name.
   */
  name: string;
  /**
   * Domain UUID in RFC 4122 textual form (8-4-4-4-12 hex digits, either case). Generated when absent.
   */
  uuid?: string;
  /**
   * Short human-readable title.
   */
  title?: string;
  /**
   * Free-form human-readable description.
   */
  description?: string;
  /**
   * Memory given to the domain at boot, in MiB.
   */
  memoryMiB: number;
  /**
   * Maximum memory the domain may grow to, in MiB. Must be >= memoryMiB. Defaults to memoryMiB.
   */
  maxMemoryMiB?: number;
  /**
   * Number of virtual CPUs.
   */
  vcpus: number;
  lifecycle?: Lifecycle;
  /**
   * Applications' own labels, string to string. Not interpreted by virtkit.
   */
  metadata?: {
    [k: string]: string;
  };
  /**
   * How the domain boots; the variant is selected by `type`.
   */
  os: HvmOs | ContainerOs;
  devices?: Devices;
  /**
   * Driver-specific sections, keyed by driver name. Each driver validates its own section with a schema it supplies.
   */
  driver?: {
    /**
     * One driver's section; opaque here, checked against the driver's own schema.
     */
    [k: string]: {
      [k: string]: unknown;
    };
  };
}
/**
 * What to do when the guest powers off, reboots or crashes (libvirt's on_poweroff, on_reboot, on_crash).
 */
export interface Lifecycle {
  /**
   * Action when the guest powers off. Default "destroy".
   */
  onPoweroff?: "destroy" | "restart" | "preserve";
  /**
   * Action when the guest reboots. Default "restart".
   */
  onReboot?: "restart" | "destroy" | "preserve";
  /**
   * Action when the guest crashes. Default "destroy".
   */
  onCrash?: "destroy" | "restart" | "preserve" | "coredump-destroy" | "coredump-restart";
}
/**
 * Full virtualization: a hardware virtual machine booting firmware or a direct kernel.
 */
export interface HvmOs {
  /**
   * Hardware virtual machine.
   */
  type: "hvm";
  /**
   * Guest CPU architecture. Defaults to the host's.
   */
  arch?: "x86_64" | "i686" | "aarch64" | "armv7l" | "ppc64le" | "riscv64" | "s390x";
  /**
   * Machine type, e.g. "q35" or "virt". Defaults to the driver's choice.
   */
  machine?: string;
  /**
   * Kernel image for direct kernel boot (absolute host path).
   */
  kernel?: string;
  /**
   * Initial ramdisk for direct kernel boot (absolute host path). Requires kernel.
   */
  initrd?: string;
  /**
   * Kernel command line. Requires kernel.
   */
  cmdline?: string;
  /**
   * Boot devices to try, in order.
   */
  bootOrder?: ("disk" | "cdrom" | "network")[];
}
/**
 * OS-level container: a root file system and an init process.
 */
export interface ContainerOs {
  /**
   * Container.
   */
  type: "container";
  /**
   * Root file system directory (absolute host path).
   */
  rootfs: string;
  /**
   * Init process argv. Default ["/sbin/init"].
   *
   * @minItems 1
   */
  init?: [string, ...string[]];
  /**
   * Container hostname (RFC 1123).
   */
  hostname?: string;
  /**
   * Environment of the init process.
   */
  env?: {
    [k: string]: string;
  };
}
/**
 * Devices attached to the domain.
 */
export interface Devices {
  /**
   * Block devices.
   */
  disks?: Disk[];
  /**
   * Network interfaces.
   */
  interfaces?: Interface[];
  /**
   * Serial ports.
   */
  serials?: Serial[];
}
/**
 * A disk backed by a host file or block device.
 */
export interface Disk {
  /**
   * Backing file or block device (absolute host path).
   */
  source: string;
  /**
   * Image format. Default "raw".
   */
  format?: "raw" | "qcow2";
  /**
   * Device name in the guest, e.g. "vda". Unique per domain.
   */
  target?: string;
  /**
   * Bus the disk is attached to.
   */
  bus?: "virtio" | "sata" | "scsi" | "ide" | "xen";
  /**
   * Attach read-only.
   */
  readonly?: boolean;
  /**
   * Per-device boot priority, 1 first.
   */
  bootOrder?: number;
}
/**
 * A network interface.
 */
export interface Interface {
  /**
   * "user": user-mode NAT; "bridge": attached to a host bridge; "none": no backend (link down).
   */
  type: "user" | "bridge" | "none";
  /**
   * Host bridge name (Linux interface name). Required when type is "bridge".
   */
  bridge?: string;
  /**
   * MAC address, e.g. "52:54:00:12:34:56". Generated when absent; unique per domain.
   */
  mac?: string;
  /**
   * Emulated NIC model.
   */
  model?: "virtio" | "e1000" | "rtl8139";
}
/**
 * A serial port.
 */
export interface Serial {
  /**
   * File the port's output is logged to (absolute host path).
   */
  logFile?: string;
}
