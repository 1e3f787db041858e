/**
 * The machine a benchmark ran on, as the README's performance section reports it.
 *
 * @module
 */

export interface Machine {
  cpu: string;
  cores: number;
  memory_gib: number;
  kernel: string;
  /** The file system and block device the benchmark's files were on. */
  disk: string;
  deno: string;
  sqlite: string;
}

/** The 1-minute load average: the machine is shared, and a busy one skews every row. */
export function loadAverage(): number {
  return Number(readText("/proc/loadavg")?.split(" ")[0] ?? NaN);
}

function readText(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}

/** The mount holding `path`: the longest mount point that prefixes it. */
function mountOf(path: string): { device: string; point: string; type: string } | undefined {
  const mounts = (readText("/proc/mounts") ?? "").split("\n").map((line) => line.split(" "))
    .filter((f) => f.length >= 3 && (path === f[1] || path.startsWith(f[1].replace(/\/?$/, "/"))));
  mounts.sort((x, y) => y[1].length - x[1].length);
  const m = mounts[0];
  return m ? { device: m[0], point: m[1], type: m[2] } : undefined;
}

function describeDisk(path: string): string {
  const mount = mountOf(Deno.realPathSync(path));
  if (!mount) return "unknown";
  const name = mount.device.replace(/^\/dev\//, "");
  const rotational = readText(`/sys/block/${name}/queue/rotational`)?.trim();
  const model = readText(`/sys/block/${name}/device/model`)?.trim();
  const kind = rotational === "1" ? "rotational" : rotational === "0" ? "non-rotational" : "";
  return [mount.device, mount.type, model, kind].filter(Boolean).join(", ");
}

export function describeMachine(path: string, sqlite: string): Machine {
  const cpuinfo = readText("/proc/cpuinfo") ?? "";
  const meminfo = readText("/proc/meminfo") ?? "";
  const memKiB = Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? 0);
  return {
    cpu: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown",
    cores: navigator.hardwareConcurrency,
    memory_gib: Math.round(memKiB / 1024 / 1024 * 10) / 10,
    kernel: Deno.osRelease(),
    disk: describeDisk(path),
    deno: Deno.version.deno,
    sqlite,
  };
}

/**
 * Writes back what earlier steps left dirty (`sync`), so that the next measurement does not
 * wait for them: a floor measured right after a section's gigabyte of writes ran 3x slower
 * than alone.
 */
export async function settleDisk(): Promise<void> {
  try {
    await new Deno.Command("sync", { stdout: "null", stderr: "null" }).output();
  } catch {
    // No `sync` here: the measurement goes on as before.
  }
}
