/**
 * A TCP proxy in front of an S3 server that answers chosen requests itself with
 * `503 SlowDown`, as S3 does when it asks a client to slow down (RGW 16 has no rate limit to
 * make it say so). Everything else is forwarded byte for byte, so SigV4 signatures, which
 * cover the Host header, still check at the server.
 *
 * HTTP/1.1 clients send a connection's next request only after reading the whole answer to
 * the one before, so the proxy needs to parse requests only: it reads each one's header and
 * `Content-Length` body, then forwards it, or answers 503 and closes the connection.
 *
 * @module
 */

const BODY =
  '<?xml version="1.0"?><Error><Code>SlowDown</Code><Message>Slow down</Message></Error>';
const SLOWDOWN = new TextEncoder().encode(
  "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nConnection: close\r\n" +
    `Content-Length: ${BODY.length}\r\n\r\n${BODY}`,
);

export class SlowdownProxy {
  /** Requests seen, as `METHOD /path` lines, and which were answered 503. */
  readonly requests: { line: string; refused: boolean }[] = [];
  #listener: Deno.TcpListener;
  #accepting: Promise<void>;
  #open = new Set<Deno.Conn>();
  #tasks: Promise<void>[] = [];

  constructor(
    readonly upstreamPort: number,
    /** Whether to answer this request with 503 (its request line, e.g. `PUT /b/k HTTP/1.1`). */
    public refuse: (line: string) => boolean,
  ) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept();
  }

  get port(): number {
    return this.#listener.addr.port;
  }

  async #accept(): Promise<void> {
    for (;;) {
      let client: Deno.Conn;
      try {
        client = await this.#listener.accept();
      } catch {
        return;
      }
      this.#tasks.push(this.#serve(client));
    }
  }

  async #serve(client: Deno.Conn): Promise<void> {
    this.#open.add(client);
    let server: Deno.Conn | undefined;
    let buffered = new Uint8Array(0);
    const read = async (): Promise<boolean> => {
      const chunk = new Uint8Array(64 * 1024);
      const n = await client.read(chunk);
      if (n === null) return false;
      const joined = new Uint8Array(buffered.length + n);
      joined.set(buffered);
      joined.set(chunk.subarray(0, n), buffered.length);
      buffered = joined;
      return true;
    };
    try {
      for (;;) {
        let end = -1;
        while ((end = headerEnd(buffered)) < 0) if (!(await read())) return;
        const head = new TextDecoder().decode(buffered.subarray(0, end));
        const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
        while (buffered.length < end + length) if (!(await read())) return;
        const request = buffered.subarray(0, end + length);
        buffered = buffered.slice(end + length);
        const line = head.slice(0, head.indexOf("\r\n"));
        const refused = this.refuse(line);
        this.requests.push({ line, refused });
        if (refused) {
          await writeAll(client, SLOWDOWN);
          return;
        }
        if (!server) {
          server = await Deno.connect({ hostname: "127.0.0.1", port: this.upstreamPort });
          this.#open.add(server);
          this.#tasks.push(pipe(server, client));
        }
        await writeAll(server, request);
      }
    } catch {
      // One side went away.
    } finally {
      for (const conn of [client, server]) {
        if (conn && this.#open.delete(conn)) {
          try {
            conn.close();
          } catch {
            // closed already
          }
        }
      }
    }
  }

  async close(): Promise<void> {
    this.#listener.close();
    await this.#accepting;
    for (const conn of [...this.#open]) {
      try {
        conn.close();
      } catch {
        // closed already
      }
    }
    this.#open.clear();
    await Promise.allSettled(this.#tasks);
  }
}

function headerEnd(bytes: Uint8Array): number {
  for (let i = 3; i < bytes.length; i++) {
    if (bytes[i] === 10 && bytes[i - 1] === 13 && bytes[i - 2] === 10 && bytes[i - 3] === 13) {
      return i + 1;
    }
  }
  return -1;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

async function pipe(from: Deno.Conn, to: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(64 * 1024);
  try {
    for (;;) {
      const n = await from.read(buffer);
      if (n === null) break;
      await writeAll(to, buffer.subarray(0, n));
    }
  } catch {
    // closed
  }
  try {
    to.close();
  } catch {
    // closed already
  }
}
