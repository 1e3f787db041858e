/**
 * A socket: destination opened with the plugin's lifetime signal (lib/backends/stopping.ts)
 * and closed again must not stay reachable from that signal: an async copy whose server is
 * down closes and reopens its destination every 0.5 to 30 s for as long as the node runs.
 */
import { assertEquals } from "./support/assert.ts";
import { SocketBackend } from "../lib/backends/socket/backend.ts";
import { DEFAULT_RETRY_POLICY } from "../lib/backends/socket/options.ts";

/** The lifetime signal, counting the listeners added to it and not removed. */
function countingLifetime(): { lifetime: AbortController; live: () => number } {
  const lifetime = new AbortController();
  const signal = lifetime.signal;
  const listeners = new Set<unknown>();
  const add = signal.addEventListener.bind(signal);
  const remove = signal.removeEventListener.bind(signal);
  signal.addEventListener = ((type: string, listener: EventListener, options?: unknown) => {
    listeners.add(listener);
    add(type, listener, options as AddEventListenerOptions);
  }) as typeof signal.addEventListener;
  signal.removeEventListener = ((type: string, listener: EventListener, options?: unknown) => {
    listeners.delete(listener);
    remove(type, listener, options as EventListenerOptions);
  }) as typeof signal.removeEventListener;
  return { lifetime, live: () => listeners.size };
}

Deno.test("a socket destination opened and closed again leaves no listener on the plugin's lifetime", async () => {
  const down = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = down.addr.port;
  down.close();
  const { lifetime, live } = countingLifetime();
  // As an async copy does while its server is down: open, fail to connect, close; again.
  for (let i = 0; i < 20; i++) {
    const backend = SocketBackend.open(`socket:127.0.0.1:${port}`, {
      signal: lifetime.signal,
      policy: { ...DEFAULT_RETRY_POLICY, timeoutMs: 1_000, retries: 0 },
    });
    await backend.ready().catch(() => {});
    backend.close();
  }
  // Each listener holds its closed backend (and all it refers to) until the plugin exits.
  assertEquals(live(), 0);
  lifetime.abort();
});
