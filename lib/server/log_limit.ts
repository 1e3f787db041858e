/**
 * The server's per-connection failure lines, bounded: anyone who reaches the port can make
 * them, and from loopback (every peer of a Tor onion service, never turned away) as fast as
 * they connect. Each kind is logged at most so many times a minute, the first at once; past
 * that its lines are counted, and one line says how many once the minute is over.
 *
 * @module
 */
import type { LogLevel } from "./session.ts";

/** A kind of per-connection failure line, limited on its own. */
export type FailureKind =
  | "connection"
  | "login"
  | "key"
  | "protocol"
  | "timeout"
  | "tls"
  | "wire"
  | "v1Limit"
  | "v1Refused"
  | "v1Storage"
  | "pending"
  | "nodeLimit";

/** What the summary calls each kind's lines. */
const FAILURE_KINDS: Record<FailureKind, string> = {
  connection: "connections that proved no key (their connect and disconnect lines)",
  login: "refused logins",
  // The operator's to fix: kept apart, so that a flood of bad proofs does not hide it.
  key: "logins refused for a node key the server cannot use",
  protocol: "protocol errors",
  timeout: "connections refused for no handshake in time",
  tls: "connections refused at TLS (not TLS, or its handshake failed)",
  wire: "connections refused for a wire or protocol version this server does not serve",
  v1Limit: "wire v1 connections past --max-v1-connections",
  v1Refused: "wire v1 requests refused (NACK)",
  // A disk that fails is the operator's to fix: kept apart, so that a flood of refusals does
  // not hide it.
  v1Storage: "wire v1 writes the server could not store (NACK)",
  pending: "connections closed or turned away for the handshakes awaiting",
  nodeLimit: "connections of a node past --max-connections",
};

const MINUTE_MS = 60_000;

/** A kind's minute: from its first line, the lines logged and those left out. */
interface Minute {
  start: number;
  logged: number;
  left: number;
  /** The most severe level of those left out, which their summary carries. */
  level: LogLevel;
}

const SEVERITY: LogLevel[] = ["debug", "info", "warning", "error"];

export class FailureLog {
  #minutes = new Map<FailureKind, Minute>();

  constructor(
    readonly log: (level: LogLevel, message: string) => void,
    /** Lines of each kind logged in a minute. */
    readonly perMinute: number,
    /** The clock, in ms. */
    readonly now: () => number = () => performance.now(),
  ) {}

  /**
   * Logs `message`, a line of `kind`, unless `perMinute` of its kind were this minute; says
   * whether it did.
   */
  line(kind: FailureKind, level: LogLevel, message: string): boolean {
    const now = this.now();
    this.#settle(kind, now);
    let minute = this.#minutes.get(kind);
    if (!minute) this.#minutes.set(kind, minute = { start: now, logged: 0, left: 0, level });
    if (minute.logged < this.perMinute) {
      minute.logged++;
      this.log(level, message);
      return true;
    }
    minute.left++;
    if (SEVERITY.indexOf(level) > SEVERITY.indexOf(minute.level)) minute.level = level;
    return false;
  }

  /**
   * Says how many lines each kind whose minute is over left out; with `all` (the server
   * stopping), each kind's so far.
   */
  flush(all = false): void {
    const now = this.now();
    for (const kind of [...this.#minutes.keys()]) this.#settle(kind, all ? Infinity : now);
  }

  /** Ends `kind`'s minute once it is over at `now`, saying how many lines it left out. */
  #settle(kind: FailureKind, now: number): void {
    const minute = this.#minutes.get(kind);
    if (!minute || now - minute.start < MINUTE_MS) return;
    this.#minutes.delete(kind);
    if (minute.left === 0) return;
    this.log(
      minute.level,
      `${FAILURE_KINDS[kind]}: ${minute.left} more in the last minute, not logged (at most ` +
        `${this.perMinute} a minute of each kind are)`,
    );
  }
}
