/**
 * Splits the byte stream lightningd writes to a plugin into messages, by their JSON
 * structure, as lightningd does.
 *
 * A message is a JSON object (or array) from its opening bracket to the bracket that closes
 * it: the scanner follows strings, escapes and nesting depth, and nothing else. `\n\n`,
 * which lightningd writes after every message, is whitespace between messages; it may also
 * occur inside one, since a forwarded RPC call is its caller's own bytes (blank lines, CRLF
 * and tabs included). Validation is left to `JSON.parse`.
 *
 * Recovery rule: between messages, any byte that is not JSON whitespace and cannot open a
 * message (`{` or `[`) starts a run of garbage, dropped up to and including the next `\n\n`;
 * the stream resumes with the next `{` after it. The framer keeps no garbage bytes, only
 * their count. Inside a message nothing ends it early: content after a blank line may be
 * part of it (the caller's params), so guessing a new message there would let an RPC
 * caller inject one.
 *
 * Memory: bytes of a message that spans reads are copied once as they come and joined once
 * at its end; a message wholly inside one read is returned as a view of that read. Garbage
 * costs nothing. A message that never closes holds all the input after it until input ends
 * (as lightningd's own parser would): memory then grows with it as with any large message.
 *
 * @module
 */

const NL = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const TAB = 0x09;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;

const BETWEEN = 0;
const MESSAGE = 1;
const GARBAGE = 2;

export class MessageFramer {
  #state = BETWEEN;
  #depth = 0;
  #inString = false;
  /** A backslash ended the last read inside a string: the next byte is escaped. */
  #escaped = false;
  /** In garbage, the last read ended with `\n`. */
  #newline = false;
  #garbage = 0;
  #pieces: Uint8Array[] = [];
  #pendingBytes = 0;

  /** @param onGarbage told how many bytes each dropped run of garbage held */
  constructor(readonly onGarbage: (bytes: number) => void = () => {}) {}

  /** Bytes held that do not yet form a whole message. */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  /**
   * Takes the next bytes read; returns the messages they complete, in order. A returned
   * message may be a view of `chunk`: use it before `chunk`'s buffer is reused.
   */
  push(chunk: Uint8Array): Uint8Array[] {
    const messages: Uint8Array[] = [];
    const n = chunk.length;
    let i = 0;
    let start = 0;
    // The scanner's state, in locals while it runs.
    let state = this.#state;
    let depth = this.#depth;
    let inString = this.#inString;
    if (this.#escaped && n > 0) {
      this.#escaped = false;
      i = 1;
    }
    while (i < n) {
      if (state === MESSAGE) {
        if (inString) {
          // The next quote ends the string unless an odd run of backslashes escapes it.
          const quote = chunk.indexOf(QUOTE, i);
          const end = quote === -1 ? n : quote;
          let run = 0;
          while (end - run > i && chunk[end - run - 1] === BACKSLASH) run++;
          if (quote === -1) {
            this.#escaped = (run & 1) === 1;
            i = n;
          } else {
            inString = (run & 1) === 1;
            i = quote + 1;
          }
          continue;
        }
        const byte = chunk[i++];
        if (byte === QUOTE) {
          inString = true;
        } else if (byte === OPEN_OBJECT || byte === OPEN_ARRAY) {
          depth++;
        } else if ((byte === CLOSE_OBJECT || byte === CLOSE_ARRAY) && --depth === 0) {
          messages.push(this.#take(chunk.subarray(start, i)));
          state = BETWEEN;
        }
      } else if (state === BETWEEN) {
        const byte = chunk[i];
        if (byte === SPACE || byte === NL || byte === CR || byte === TAB) {
          i++;
        } else if (byte === OPEN_OBJECT || byte === OPEN_ARRAY) {
          state = MESSAGE;
          depth = 1;
          start = i++;
        } else {
          state = GARBAGE;
          this.#garbage = 0;
          this.#newline = false;
        }
      } else {
        i = this.#skipGarbage(chunk, i);
        if (this.#garbage < 0) state = BETWEEN;
      }
    }
    this.#state = state;
    this.#depth = depth;
    this.#inString = inString;
    if (state === MESSAGE) this.#keep(chunk.slice(start));
    return messages;
  }

  /**
   * Input ended: reports garbage not yet reported, drops any partial message and returns
   * how many bytes it held.
   */
  end(): number {
    if (this.#state === GARBAGE && this.#garbage > 0) this.onGarbage(this.#garbage);
    this.#garbage = 0;
    const partial = this.#pendingBytes;
    this.#pieces = [];
    this.#pendingBytes = 0;
    this.#state = BETWEEN;
    this.#inString = this.#escaped = false;
    return partial;
  }

  /** Skips garbage up to and including `\n\n`; returns where to go on. */
  #skipGarbage(chunk: Uint8Array, i: number): number {
    if (this.#newline && chunk[i] === NL) {
      this.#endGarbage(-1);
      return i + 1;
    }
    let nl = chunk.indexOf(NL, i);
    while (nl !== -1 && nl + 1 < chunk.length && chunk[nl + 1] !== NL) {
      nl = chunk.indexOf(NL, nl + 1);
    }
    if (nl === -1 || nl + 1 === chunk.length) {
      this.#garbage += chunk.length - i;
      this.#newline = nl !== -1;
      return chunk.length;
    }
    this.#garbage += nl - i;
    this.#endGarbage(0);
    return nl + 2;
  }

  /** Reports the run of garbage; a negative count marks it ended. */
  #endGarbage(adjust: number): void {
    this.#newline = false;
    this.onGarbage(this.#garbage + adjust);
    this.#garbage = -1;
  }

  #keep(piece: Uint8Array): void {
    if (piece.length === 0) return;
    this.#pieces.push(piece);
    this.#pendingBytes += piece.length;
  }

  /** The whole message whose last piece is `tail`. */
  #take(tail: Uint8Array): Uint8Array {
    if (this.#pieces.length === 0) return tail;
    const message = new Uint8Array(this.#pendingBytes + tail.length);
    let at = 0;
    for (const piece of this.#pieces) {
      message.set(piece, at);
      at += piece.length;
    }
    message.set(tail, at);
    this.#pieces = [];
    this.#pendingBytes = 0;
    return message;
  }
}
