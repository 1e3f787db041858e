/**
 * Splits the byte stream lightningd writes to a plugin into messages.
 *
 * lightningd ends every JSON message with `\n\n` (compact JSON holds no raw newline), packs
 * several into one read, and splits large ones over many reads. Messages are bounded only
 * by memory: pieces are kept as they come and joined once.
 *
 * @module
 */

const NL = 0x0a;

export class MessageFramer {
  #pieces: Uint8Array[] = [];
  #pendingBytes = 0;

  /** Bytes held that do not yet form a whole message. */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  /** Takes the next bytes read; returns the messages they complete, in order. */
  push(chunk: Uint8Array): Uint8Array[] {
    const messages: Uint8Array[] = [];
    let start = 0;
    const last = this.#pieces.at(-1);
    if (last && last[last.length - 1] === NL && chunk[0] === NL) {
      this.#pieces[this.#pieces.length - 1] = last.subarray(0, last.length - 1);
      this.#pendingBytes--;
      this.#emit(messages);
      start = 1;
    }
    let nl = chunk.indexOf(NL, start);
    while (nl !== -1 && nl + 1 < chunk.length) {
      if (chunk[nl + 1] === NL) {
        this.#add(chunk.subarray(start, nl));
        this.#emit(messages);
        start = nl + 2;
        nl = chunk.indexOf(NL, start);
      } else {
        nl = chunk.indexOf(NL, nl + 1);
      }
    }
    if (start < chunk.length) this.#add(chunk.subarray(start));
    return messages;
  }

  #add(piece: Uint8Array): void {
    if (piece.length === 0) return;
    this.#pieces.push(piece);
    this.#pendingBytes += piece.length;
  }

  #emit(messages: Uint8Array[]): void {
    const pieces = this.#pieces;
    this.#pieces = [];
    const size = this.#pendingBytes;
    this.#pendingBytes = 0;
    if (size === 0) return;
    let message: Uint8Array;
    if (pieces.length === 1) {
      message = pieces[0];
    } else {
      message = new Uint8Array(size);
      let at = 0;
      for (const piece of pieces) {
        message.set(piece, at);
        at += piece.length;
      }
    }
    // Stray whitespace between messages is not a message.
    if (message.every((b) => b === NL || b === 0x20 || b === 0x0d || b === 0x09)) return;
    messages.push(message);
  }
}
