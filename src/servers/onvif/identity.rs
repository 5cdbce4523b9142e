//! What the camera says it is: read once at start from the machine (a
//! Pi's device tree, else DMI or systemd's machine id), and the hardware
//! address NVRs and Home Assistant key the camera on.

use std::path::Path;

/// The machine's identity, as ONVIF's device service reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The board, e.g. "Raspberry Pi 3 Model B Plus Rev 1.3".
    pub model: String,
    /// The SoC's serial number on a Pi, else the machine id.
    pub serial: String,
    /// The network interface the default route leaves by, and its MAC.
    pub interface: String,
    pub mac: String,
    /// The host name.
    pub hostname: String,
}

impl Identity {
    /// Reads the identity from this machine's `/proc` and `/sys`.
    pub fn of_this_machine() -> Self {
        Self::read(Path::new("/"))
    }

    /// Reads the identity under `root` (a machine's `/`).
    fn read(root: &Path) -> Self {
        let text = |path: &str| {
            std::fs::read_to_string(root.join(path))
                .ok()
                .map(|t| {
                    t.trim_matches(|c: char| c == '\0' || c.is_whitespace())
                        .to_owned()
                })
                .filter(|t| !t.is_empty())
        };
        let model = text("proc/device-tree/model")
            .or_else(|| text("sys/class/dmi/id/product_name"))
            .unwrap_or_else(|| "unknown".into());
        let serial = text("proc/device-tree/serial-number")
            .or_else(|| text("etc/machine-id").map(|id| id.chars().take(16).collect()))
            .unwrap_or_else(|| "unknown".into());
        let (interface, mac) =
            network_interface(root).unwrap_or_else(|| ("eth0".into(), "00:00:00:00:00:00".into()));
        Self {
            model,
            serial,
            interface,
            mac,
            hostname: text("proc/sys/kernel/hostname").unwrap_or_else(|| "streamcam".into()),
        }
    }
}

/// The interface of the default route (`/proc/net/route`), or else the
/// first one with a hardware address, and that address.
fn network_interface(root: &Path) -> Option<(String, String)> {
    let mac_of = |name: &str| {
        std::fs::read_to_string(root.join("sys/class/net").join(name).join("address"))
            .ok()
            .map(|m| m.trim().to_ascii_lowercase())
            .filter(|m| m.len() == 17 && m != "00:00:00:00:00:00")
    };
    let routes = std::fs::read_to_string(root.join("proc/net/route")).unwrap_or_default();
    let default = routes.lines().skip(1).find_map(|line| {
        let mut fields = line.split_whitespace();
        let (name, destination) = (fields.next()?, fields.next()?);
        (destination == "00000000").then(|| name.to_owned())
    });
    if let Some(name) = default
        && let Some(mac) = mac_of(&name)
    {
        return Some((name, mac));
    }
    let mut names: Vec<String> = std::fs::read_dir(root.join("sys/class/net"))
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n != "lo")
        .collect();
    names.sort();
    names
        .into_iter()
        .find_map(|n| Some((n.clone(), mac_of(&n)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, path: &str, text: &str) {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn a_pi_is_known_by_its_device_tree_and_its_default_route() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "proc/device-tree/model",
            "Raspberry Pi 3 Model B Plus Rev 1.3\0",
        );
        write(root, "proc/device-tree/serial-number", "00000000a1b2c3d4\0");
        write(root, "etc/machine-id", "0123456789abcdef0123456789abcdef\n");
        write(root, "proc/sys/kernel/hostname", "garden\n");
        write(
            root,
            "proc/net/route",
            "Iface\tDestination\tGateway\nwlan0\t0002A8C0\t00000000\neth0\t00000000\t0102A8C0\n",
        );
        write(root, "sys/class/net/eth0/address", "B8:27:EB:12:34:56\n");
        write(root, "sys/class/net/wlan0/address", "b8:27:eb:65:43:21\n");
        let id = Identity::read(root);
        assert_eq!(id.model, "Raspberry Pi 3 Model B Plus Rev 1.3");
        assert_eq!(id.serial, "00000000a1b2c3d4");
        assert_eq!(
            (id.interface.as_str(), id.mac.as_str()),
            ("eth0", "b8:27:eb:12:34:56")
        );
        assert_eq!(id.hostname, "garden");
    }

    #[test]
    fn another_machine_falls_back_to_dmi_the_machine_id_and_any_interface() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "sys/class/dmi/id/product_name", "Standard PC\n");
        write(root, "etc/machine-id", "0123456789abcdef0123456789abcdef\n");
        write(root, "sys/class/net/lo/address", "00:00:00:00:00:00\n");
        write(root, "sys/class/net/enp1s0/address", "52:54:00:12:34:56\n");
        let id = Identity::read(root);
        assert_eq!(id.model, "Standard PC");
        assert_eq!(id.serial, "0123456789abcdef");
        assert_eq!(id.mac, "52:54:00:12:34:56");
        assert_eq!(id.hostname, "streamcam");
        let empty = tempfile::tempdir().unwrap();
        let id = Identity::read(empty.path());
        assert_eq!(
            (id.model.as_str(), id.serial.as_str()),
            ("unknown", "unknown")
        );
    }
}
