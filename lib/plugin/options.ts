/**
 * The plugin's options: declared once in a table that gives both the `getmanifest` entries
 * and the typed values read from `init` and `setconfig`.
 *
 * How lightningd v26.06.6 sends them (fixtures/cln-v26.06.6/rpc-options):
 * - `init` `params.options` holds each option that is set or has a default, typed: an `int`
 *   as a JSON number, a `bool` as a JSON bool, a `string` as a string, a `flag` that is set as
 *   `true`; a `flag` that is not set, and a `string` without default that is not set, are
 *   absent.
 * - `setconfig` (for `dynamic` options only) sends `{"config": name, "val": text}`: `val` is
 *   a string even for an `int` ("20"). lightningd does not check it first (lightningd/
 *   configs.c): it is the caller's text, and once the plugin accepts it, lightningd saves it
 *   in `config.setconfig` as it is. At the next start lightningd reads that line as it reads
 *   its config: a `bool` as ccan's `opt_set_bool_arg` (yes/no/true/false, any case, sent in
 *   `init` as a JSON bool), an `int` with `strtol(..., 0)` and then sends the text in `init`
 *   as a raw JSON literal. So an `int` is taken only in plain decimal: "010" would be octal
 *   8 to lightningd and no JSON in `init`, "08" would stop lightningd from starting.
 *
 * @module
 */
import { ErrorCode, RpcError } from "./jsonrpc.ts";

/** The option types lightningd knows, as `getmanifest` declares them. */
export type OptionType = "string" | "int" | "bool" | "flag";
/** An option's value: a string, a whole number (`int`) or a bool (`bool`, `flag`). */
export type OptionValue = string | number | boolean;

/** One option as the plugin declares it. */
export interface OptionSpec {
  /** Its name, as lightningd's config and command line take it. */
  name: string;
  /** How lightningd reads its value and sends it in `init`. */
  type: OptionType;
  /** What it sets, as lightningd's help shows it. */
  description: string;
  /** Not for a `flag`, which is false unless set. */
  default?: OptionValue;
  /** Changeable while the node runs, with `lightning-cli setconfig NAME VALUE`. */
  dynamic?: boolean;
  /** For an `int`: the smallest value it takes. */
  min?: number;
}

/** A whole number as lightningd reads it back the same and JSON takes it: no leading zero. */
const INTEGER = /^-?(0|[1-9][0-9]*)$/;
const LEADING_ZERO = /^-?0[0-9]/;
/** What ccan's opt_set_bool_arg takes (compared ignoring case). */
const BOOL_TEXT = new Map([["true", true], ["yes", true], ["false", false], ["no", false]]);

/** The value `raw` stands for, or why it is not one; `text` accepts setconfig's strings. */
function convert(spec: OptionSpec, raw: unknown, text: boolean): OptionValue | { error: string } {
  switch (spec.type) {
    case "string":
      if (typeof raw === "string") return raw;
      return { error: `${JSON.stringify(raw)} is not a string` };
    case "int": {
      if (text && typeof raw === "string" && LEADING_ZERO.test(raw)) {
        return { error: `${JSON.stringify(raw)} has a leading zero` };
      }
      const value = text && typeof raw === "string" && INTEGER.test(raw) ? Number(raw) : raw;
      if (typeof value !== "number" || !Number.isSafeInteger(value)) {
        return { error: `${JSON.stringify(raw)} is not a whole number` };
      }
      if (spec.min !== undefined && value < spec.min) {
        return { error: `${value} is below ${spec.min}` };
      }
      return value;
    }
    case "bool":
    case "flag":
      if (typeof raw === "boolean") return raw;
      if (text && typeof raw === "string" && BOOL_TEXT.has(raw.toLowerCase())) {
        return BOOL_TEXT.get(raw.toLowerCase())!;
      }
      return { error: `${JSON.stringify(raw)} is not a boolean` };
  }
}

/** What to write instead, for an error message. */
function expected(spec: OptionSpec, text: boolean): string {
  switch (spec.type) {
    case "string":
      return "a string";
    case "int":
      return spec.min === undefined
        ? "a whole number such as 42"
        : `a whole number from ${spec.min} on`;
    case "bool":
    case "flag":
      // init's values are typed: there only a JSON bool is one.
      return text ? "true, false, yes or no (any case)" : "a JSON true or false";
  }
}

/** The options in force; starts from the declared defaults. */
export class Options {
  readonly #specs: Map<string, OptionSpec>;
  readonly #values = new Map<string, OptionValue>();

  constructor(specs: readonly OptionSpec[]) {
    this.#specs = new Map(specs.map((spec) => [spec.name, spec]));
    for (const spec of specs) {
      if (spec.type === "flag") this.#values.set(spec.name, false);
      else if (spec.default !== undefined) this.#values.set(spec.name, spec.default);
    }
  }

  /** The `options` entries of the `getmanifest` answer, keys in lightningd's order. */
  manifest(): OptionSpec[] {
    return [...this.#specs.values()].map((spec) => ({
      name: spec.name,
      type: spec.type,
      ...spec.default === undefined ? {} : { default: spec.default },
      ...spec.dynamic ? { dynamic: true } : {},
      description: spec.description,
    }));
  }

  /**
   * Takes `init`'s `params.options`. A value that does not fit its option keeps the value in
   * force; each problem comes back as one line to log.
   */
  init(given: unknown): string[] {
    if (given === undefined) return [];
    if (typeof given !== "object" || given === null || Array.isArray(given)) {
      return [`Ignoring init's options: ${JSON.stringify(given)} is not an object`];
    }
    const problems: string[] = [];
    for (const [name, raw] of Object.entries(given)) {
      const spec = this.#specs.get(name);
      if (spec === undefined) {
        problems.push(
          `Ignoring unknown option "${name}" in init: this plugin declares no such option`,
        );
        continue;
      }
      const value = convert(spec, raw, false);
      if (typeof value === "object") {
        const kept = this.#values.get(name);
        problems.push(
          `Ignoring option "${name}": ${value.error}; give ${expected(spec, false)} ` +
            `(keeping ${kept === undefined ? "it unset" : JSON.stringify(kept)})`,
        );
      } else {
        this.#values.set(name, value);
      }
    }
    return problems;
  }

  /** Applies a `setconfig` call's params; throws an {@linkcode RpcError} saying what to fix. */
  set(params: unknown): OptionValue {
    const { config, value } = this.parse(params);
    this.#values.set(config, value);
    return value;
  }

  /**
   * The option a `setconfig` call's params name, its spec and the value they give, checked as
   * {@linkcode set} does, without setting it.
   */
  parse(params: unknown): { config: string; spec: OptionSpec; value: OptionValue } {
    const { config, val } = (typeof params === "object" && params !== null ? params : {}) as {
      config?: unknown;
      val?: unknown;
    };
    if (typeof config !== "string") {
      throw new RpcError(ErrorCode.InvalidParams, 'Cannot set option: "config" names no option');
    }
    const spec = this.#specs.get(config);
    if (spec === undefined) {
      throw new RpcError(
        ErrorCode.InvalidParams,
        `Cannot set option "${config}": this plugin has no such option`,
      );
    }
    if (!spec.dynamic) {
      throw new RpcError(
        ErrorCode.InvalidParams,
        `Cannot set option "${config}" while the node runs: set it in lightningd's config and restart`,
      );
    }
    const value = convert(spec, val === undefined && spec.type === "flag" ? true : val, true);
    if (typeof value === "object") {
      throw new RpcError(
        ErrorCode.InvalidParams,
        `Cannot set option "${config}": ${value.error}; give ${expected(spec, true)}`,
      );
    }
    return { config, spec, value };
  }

  get(name: string): OptionValue | undefined {
    return this.#values.get(name);
  }

  /** Every declared option and its value in force (`null`: unset). */
  values(): Record<string, OptionValue | null> {
    const out: Record<string, OptionValue | null> = {};
    for (const name of this.#specs.keys()) out[name] = this.#values.get(name) ?? null;
    return out;
  }
}
