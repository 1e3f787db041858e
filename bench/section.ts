/**
 * The row registry: each benchmark is a {@linkcode Section} that measures and returns rows.
 * bench/main.ts lists the sections; a later one (compaction stall, remote round trip) is one
 * more module and one more line there.
 *
 * @module
 */

/** One measured number, beside the reference it is judged against. */
export interface Row {
  /** The group the row belongs to, e.g. "hook round trip". */
  section: string;
  /** What is measured, e.g. "p50". */
  metric: string;
  /** cln-backup's number. */
  value: number;
  unit: string;
  /** What the number is compared with, measured in the same run. */
  reference?: { label: string; value: number; unit?: string };
  /** `value / reference.value`; set by {@linkcode row} when there is a reference. */
  ratio?: number;
  /** The goal from issue 5, as text; informative only, nothing fails on it. */
  goal?: string;
  note?: string;
}

/** Builds a row, computing the ratio when there is a reference. */
export function row(fields: Omit<Row, "ratio">): Row {
  const ref = fields.reference;
  return ref && ref.value !== 0 ? { ...fields, ratio: fields.value / ref.value } : { ...fields };
}

export interface BenchContext {
  /** Smaller sizes for a fast check. */
  quick: boolean;
  /** Also the largest sizes (a million changes), which take minutes. */
  million: boolean;
  /** A temporary directory for this run, removed at the end. */
  tmp: string;
  /** Progress on stderr; the table goes to stdout. */
  log(message: string): void;
}

export interface Section {
  /** Short name, used by `--only`. */
  name: string;
  run(context: BenchContext): Promise<SectionResult>;
}

export interface SectionResult {
  rows: Row[];
  /** Extra facts written to the JSON only (sizes used, breakdowns). */
  details?: Record<string, unknown>;
}
