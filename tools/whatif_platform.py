#!/usr/bin/env python3
"""whatif_platform.py — a machine that does not exist, made from a calibrated one.

Writes, into a calibration directory (a StarPU home that a real run filled with
`starpipe train|bench --calibrate DIR`), a new machine NAME for
`starpipe simulate --calibration DIR --machine NAME`:

  .starpu/sampling/bus/NAME.platform.v4.xml   the SimGrid platform: N CPU cores and
                                              G GPUs of the calibrated kind, with the
                                              given links between host and GPUs and
                                              between GPUs
  .starpu/sampling/bus/NAME.{config,bandwidth,latency,affinity}
                                              the same figures in StarPU's own files
                                              (its schedulers' transfer estimates)
  .starpu/sampling/codelets/*/X.NAME          a copy of every perf model X recorded on
                                              the calibrated machine: a simulated core
                                              (GPU) runs each task as fast as a real
                                              one did there

It models nothing a calibration did not measure: a task's time comes from the
calibrated machine, only the number of cores and GPUs and the links change. A
CPU core of the what-if machine is a core of the calibrated one (memory
bandwidth shared by more cores is not modelled); GPUs need a calibration made
on a GPU machine (README, "Simulation"), and StarPU keeps one of the --cpus
cores to drive each GPU. Re-run it after a new calibration.

Examples:
    # 8 cores of this machine
    python3 tools/whatif_platform.py --calibration cal --name vm-8cpu --cpus 8
    # 8 GPUs of the calibrated kind, PCIe 4.0 x16 to the host, NVLink between GPUs
    python3 tools/whatif_platform.py --calibration cal --machine gpu01 --name gpu01-8 \\
        --cpus 16 --gpus 8 --host-bandwidth 25 --host-latency 10 \\
        --gpu-bandwidth 450 --gpu-latency 2 --gpu-link direct
"""
import argparse
import glob
import os
import shutil
import sys
import xml.etree.ElementTree as ET



def die(msg):
    print(f"whatif_platform: {msg}", file=sys.stderr)
    sys.exit(1)


def speed_of(host):
    return host.get("speed") or host.get("power") or "2000000000f"


def calibrated(bus, machine):
    """The calibrated machine's CPU speed string, and its first GPU's properties and links (or None)."""
    path = os.path.join(bus, f"{machine}.platform.v4.xml")
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        die(f"cannot read the calibrated platform {path}: {e}")
    hosts = {h.get("id"): h for h in root.iter("host")}
    links = {l.get("id"): l for l in root.iter("link")}
    if "CPU0" not in hosts:
        die(f"{path} has no host CPU0: not a StarPU platform file")
    gpu = None
    if "CUDA0" in hosts:
        h = hosts["CUDA0"]
        props = {p.get("id"): p.get("value") for p in h.iter("prop")}

        def link(name):
            l = links.get(name)
            if l is None:
                return None
            bw = float(l.get("bandwidth").rstrip("Bps")) / 1e9  # GB/s
            lat = float(l.get("latency").rstrip("s")) * 1e6  # µs
            return bw, lat

        gpu = {"speed": speed_of(h), "props": props, "h2d": link("RAM-CUDA0"), "d2h": link("CUDA0-RAM"),
               "d2d": link("CUDA0-CUDA1")}
    return speed_of(hosts["CPU0"]), gpu


def platform_xml(ncpus, cpu_speed, ngpus, gpu, host_bw, host_lat, gpu_bw, gpu_lat, direct):
    """A SimGrid v4 platform in the shape StarPU writes (flat routes through the host interconnect)."""
    out = ["<?xml version='1.0'?>",
           "<!DOCTYPE platform SYSTEM \"https://simgrid.org/simgrid.dtd\">",
           "<platform version=\"4.1\">",
           " <config id=\"General\">",
           "   <prop id=\"network/TCP-gamma\" value=\"-1\"></prop>",
           "   <prop id=\"network/latency-factor\" value=\"1\"></prop>",
           "   <prop id=\"network/bandwidth-factor\" value=\"1\"></prop>",
           "   <prop id=\"network/crosstraffic\" value=\"0\"></prop>",
           "   <prop id=\"network/weight-S\" value=\"0.0\"></prop>",
           " </config>",
           " <zone id=\"AS0\" routing=\"Full\">",
           "   <host id=\"MAIN\" speed=\"1f\"/>"]
    out += [f"   <host id=\"CPU{i}\" speed=\"{cpu_speed}\"/>" for i in range(ncpus)]
    for i in range(ngpus):
        out.append(f"   <host id=\"CUDA{i}\" speed=\"{gpu['speed']}\">")
        for k, v in gpu["props"].items():
            out.append(f"     <prop id=\"{k}\" value=\"{v}\"/>")
        out.append("   </host>")
    out.append("   <host id=\"RAM\" speed=\"1f\"/>")
    inter = max([host_bw] + ([gpu_bw] if ngpus > 1 else [])) if ngpus else 0.0
    out.append(f"   <link id=\"NUMA0\" bandwidth=\"{inter * 1e9:f}Bps\" latency=\"0.000000s\"/>")
    out.append(f"   <link id=\"Interconnect\" bandwidth=\"{inter * 1e9:f}Bps\" latency=\"0.000000s\"/>")
    for i in range(ngpus):
        for name in (f"RAM-CUDA{i}", f"CUDA{i}-RAM"):
            out.append(f"   <link id=\"{name}\" bandwidth=\"{host_bw * 1e9:f}Bps\" latency=\"{host_lat * 1e-6:f}s\"/>")
    for i in range(ngpus):
        for j in range(ngpus):
            if i != j:
                out.append(f"   <link id=\"CUDA{i}-CUDA{j}\" bandwidth=\"{gpu_bw * 1e9:f}Bps\" "
                           f"latency=\"{gpu_lat * 1e-6:f}s\"/>")
    for i in range(ngpus):
        for src, dst, link in (("RAM", f"CUDA{i}", f"RAM-CUDA{i}"), (f"CUDA{i}", "RAM", f"CUDA{i}-RAM")):
            out += [f"   <route src=\"{src}\" dst=\"{dst}\" symmetrical=\"NO\">",
                    f"     <link_ctn id=\"{link}\"/>", "     <link_ctn id=\"Interconnect\"/>", "   </route>"]
    for i in range(ngpus):
        for j in range(ngpus):
            if i != j:
                out += [f"   <route src=\"CUDA{i}\" dst=\"CUDA{j}\" symmetrical=\"NO\">",
                        f"     <link_ctn id=\"CUDA{i}-CUDA{j}\"/>"]
                if not direct:  # through the host bridge, shared by every transfer
                    out.append("     <link_ctn id=\"Interconnect\"/>")
                out.append("   </route>")
    out += [" </zone>", "</platform>", ""]
    return "\n".join(out)


def matrix(ngpus, host, gpu, comment):
    """StarPU's bus matrix over the memory nodes (NUMA0, then CUDA0..): MB/s or µs.

    StarPU's reader loses the last value of every row and the last row (it
    writes its own files padded with nan up to its node limit), so the matrix
    gets one more column and row of nan."""
    n = 1 + ngpus
    lines = ["# to " + "\t".join(["NUMA 0"] + [f"CUDA {i}" for i in range(ngpus)]) + f"\t({comment})"]
    for s in range(n + 1):
        row = [float("nan") if s == n or d == n else 0.0 if s == d else host if s == 0 or d == 0 else gpu
               for d in range(n + 1)]
        lines.append("\t".join(f"{v:e}" for v in row))
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calibration", required=True, help="the StarPU home a real run calibrated")
    p.add_argument("--machine", help="the calibrated machine (default: the only one there)")
    p.add_argument("--name", required=True, help="the what-if machine's name")
    p.add_argument("--cpus", type=int, required=True, help="CPU cores")
    p.add_argument("--gpus", type=int, default=0, help="GPUs of the calibrated kind (default 0)")
    p.add_argument("--host-bandwidth", type=float, help="GB/s between host and each GPU (default: calibrated)")
    p.add_argument("--host-latency", type=float, help="µs between host and each GPU (default: calibrated)")
    p.add_argument("--gpu-bandwidth", type=float, help="GB/s between two GPUs (default: calibrated, else host's)")
    p.add_argument("--gpu-latency", type=float, help="µs between two GPUs (default: calibrated, else host's)")
    p.add_argument("--gpu-link", choices=["direct", "host"], default="host",
                   help="GPU-to-GPU transfers on their own link (direct: NVLink, NVSwitch) or through the "
                        "host bridge shared by all transfers (host: PCIe, the default)")
    a = p.parse_args()
    if a.cpus < 1 or a.cpus > 64 or a.gpus < 0 or a.gpus > 8:
        die("--cpus must be in [1, 64] and --gpus in [0, 8] (the SimGrid StarPU's limits)")
    if not a.name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        die(f"--name '{a.name}' must be letters, digits, '-', '_' or '.'")
    home = os.path.join(a.calibration, ".starpu", "sampling")
    bus = os.path.join(home, "bus")
    machines = sorted(os.path.basename(f)[:-len(".platform.v4.xml")]
                      for f in glob.glob(os.path.join(bus, "*.platform.v4.xml")))
    if not machines:
        die(f"{a.calibration} holds no calibration (no .starpu/sampling/bus/*.platform.v4.xml): "
            "record one with a real run: starpipe train --calibrate DIR [options]")
    machine = a.machine
    if machine is None:
        if len(machines) > 1:
            die(f"{a.calibration} holds several machines ({', '.join(machines)}): choose one with --machine")
        machine = machines[0]
    if machine not in machines:
        die(f"{a.calibration} has no machine '{machine}' (it holds: {', '.join(machines)})")
    if a.name == machine:
        die("--name must differ from the calibrated machine's name")
    if a.gpus and a.cpus <= a.gpus:
        die(f"StarPU keeps one CPU core to drive each GPU: --cpus {a.cpus} leaves no CPU worker beside "
            f"{a.gpus} GPUs (give --cpus {a.gpus + 1} or more)")
    cpu_speed, gpu = calibrated(bus, machine)
    if a.gpus and gpu is None:
        die(f"machine '{machine}' has no GPU in its calibration: calibrate on a GPU machine first "
            "(README, \"Simulation\")")

    def pick(given, measured, what):
        if given is not None:
            return given
        if measured is not None:
            return measured
        die(f"the calibration has no {what}: give it")

    host_bw = host_lat = gpu_bw = gpu_lat = 0.0
    if a.gpus:
        h2d = gpu["h2d"] or (None, None)
        host_bw = pick(a.host_bandwidth, h2d[0], "host-GPU bandwidth (--host-bandwidth)")
        host_lat = pick(a.host_latency, h2d[1], "host-GPU latency (--host-latency)")
        d2d = gpu["d2d"] or (host_bw, host_lat)
        gpu_bw = pick(a.gpu_bandwidth, d2d[0], "GPU-GPU bandwidth")
        gpu_lat = pick(a.gpu_latency, d2d[1], "GPU-GPU latency")

    files = {
        "platform.v4.xml": platform_xml(a.cpus, cpu_speed, a.gpus, gpu, host_bw, host_lat, gpu_bw, gpu_lat,
                                        a.gpu_link == "direct"),
        "config": "# Current configuration (written by tools/whatif_platform.py from machine "
                  f"'{machine}')\n{a.cpus} # Number of CPUs\n1 # Number of NUMA nodes\n"
                  f"{a.gpus} # Number of CUDA nodes\n0 # Number of OpenCL nodes\n0 # Number of FPGA nodes\n"
                  "0 # Number of Disk nodes\n0 # Number of MPI_MS nodes\n0 # Number of TCPIP_MS nodes\n"
                  "0 # Number of HIP nodes\n",
        "bandwidth": matrix(a.gpus, host_bw * 1e3, gpu_bw * 1e3, "MB/s"),
        "latency": matrix(a.gpus, host_lat, gpu_lat, "us"),
        "affinity": "# GPU\tNUMA0\t\n" + "".join(f"{i}\t0\t\n" for i in range(a.gpus)),
    }
    for suffix, text in files.items():
        with open(os.path.join(bus, f"{a.name}.{suffix}"), "w") as f:
            f.write(text)
    copied = 0
    for model in glob.glob(os.path.join(home, "codelets", "*", f"*.{machine}")):
        shutil.copyfile(model, model[:-len(machine)] + a.name)
        copied += 1
    if not copied:
        die(f"no perf model of machine '{machine}' under {home}/codelets: calibrate first")
    print(f"whatif_platform: machine '{a.name}' in {a.calibration}: {a.cpus} CPU cores"
          + (f", {a.gpus} GPUs ({gpu['props'].get('model', '?')}), host links {host_bw:g} GB/s {host_lat:g} us, "
             f"GPU links {gpu_bw:g} GB/s {gpu_lat:g} us ({a.gpu_link})" if a.gpus else "")
          + f"; {copied} perf models copied from '{machine}'")
    print(f"simulate on it with: starpipe simulate --calibration {a.calibration} --machine {a.name} [options]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
