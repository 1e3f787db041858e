/**
 * `deno task bench`: measures what cln-backup costs a node against the floors it cannot
 * beat, all in one run, and prints one table (also written to bench/results/latest.json).
 * Nothing fails on a number: the goals are printed beside the measurements.
 *
 *     deno task bench [--quick] [--million] [--only hook,restore,...,s3,nodes] [--keep]
 *       [--out NAME]
 *
 * `--quick` uses smaller sizes for a fast check; `--million` adds the rows of a million
 * changes (scale, footprint), which take minutes; `--keep` leaves the temporary directory;
 * `--out` names the JSON file in bench/results/ (latest.json by default).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { DatabaseSync } from "node:sqlite";
import { backupSize } from "./backup_size.ts";
import { compaction } from "./compaction.ts";
import { footprint } from "./footprint.ts";
import { hookLatency } from "./hook_latency.ts";
import { describeMachine, loadAverage, settleDisk } from "./machine.ts";
import { restoreSpeed } from "./restore_speed.ts";
import { remote } from "./remote.ts";
import { scale } from "./scale.ts";
import { s3 } from "./s3.ts";
import { manyNodes } from "./many_nodes.ts";
import type { BenchContext, Row, Section } from "./section.ts";
import { renderTable } from "./table.ts";

/** The registry: one line per benchmark, in the order the table shows them. */
const SECTIONS: Section[] = [
  hookLatency,
  restoreSpeed,
  scale,
  backupSize,
  footprint,
  compaction,
  remote,
  s3,
  manyNodes,
];

const RESULTS = new URL("./results/", import.meta.url).pathname;

function sqliteVersion(): string {
  const db = new DatabaseSync(":memory:");
  try {
    return String(db.prepare("SELECT sqlite_version() AS v").get()?.v);
  } finally {
    db.close();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    // `deno task bench -- --only hook` passes its "--" on, as the README writes it.
    args: Deno.args[0] === "--" ? Deno.args.slice(1) : Deno.args,
    options: {
      quick: { type: "boolean", default: false },
      keep: { type: "boolean", default: false },
      million: { type: "boolean", default: false },
      out: { type: "string", default: "latest.json" },
      only: { type: "string" },
    },
  });
  const only = values.only?.split(",").map((s) => s.trim());
  const unknown = only?.filter((name) => !SECTIONS.some((s) => s.name === name)) ?? [];
  if (unknown.length > 0) {
    throw new Error(
      `Unknown section ${unknown.join(", ")}: choose from ${
        SECTIONS.map((s) => s.name).join(", ")
      }`,
    );
  }
  const started = performance.now();
  const tmp = Deno.makeTempDirSync({ prefix: "cln-backup-bench-" });
  const machine = describeMachine(tmp, sqliteVersion());
  const loadBefore = loadAverage();
  const context: BenchContext = {
    quick: values.quick,
    million: values.million,
    tmp,
    log: (message) => {
      const seconds = ((performance.now() - started) / 1000).toFixed(1).padStart(6);
      console.error(`[${seconds} s] ${message}`);
    },
  };
  const rows: Row[] = [];
  const details: Record<string, unknown> = {};
  try {
    for (const section of SECTIONS) {
      if (only && !only.includes(section.name)) continue;
      await settleDisk();
      const result = await section.run(context);
      rows.push(...result.rows);
      if (result.details) details[section.name] = result.details;
    }
  } finally {
    if (values.keep) context.log(`kept ${tmp}`);
    else Deno.removeSync(tmp, { recursive: true });
  }
  const seconds = (performance.now() - started) / 1000;
  const load = { before: loadBefore, after: loadAverage() };
  const heading = [
    `cln-backup benchmark${values.quick ? " (--quick)" : ""}${
      values.million ? " (--million)" : ""
    }, ${new Date().toISOString()}, ` +
    `${seconds.toFixed(0)} s`,
    `machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memory_gib} GiB, ` +
    `Linux ${machine.kernel}, disk ${machine.disk}; Deno ${machine.deno}, SQLite ${machine.sqlite}`,
    `load average (1 min) ${load.before} before, ${load.after} after`,
  ];
  console.log([...heading, "", renderTable(rows)].join("\n"));
  Deno.mkdirSync(RESULTS, { recursive: true });
  const json = {
    date: new Date().toISOString(),
    quick: values.quick,
    million: values.million,
    only: only ?? null,
    seconds: Math.round(seconds * 10) / 10,
    machine,
    load_average: load,
    rows,
    details,
  };
  Deno.writeTextFileSync(`${RESULTS}${values.out}`, JSON.stringify(json, null, 2) + "\n");
}

await main();
