import { assertThrows } from "../../tests/support/assert.ts";
import { listenTls } from "./tls_listener.ts";
import { selfSigned } from "./x509.ts";

Deno.test("a TLS certificate or key that does not load, or a key not the certificate's, stops the listener before it listens", async () => {
  const a = await selfSigned(["localhost"]);
  const b = await selfSigned(["localhost"]);
  const listen = (cert: string, key: string) => () =>
    listenTls({ hostname: "127.0.0.1", port: 0, cert, key });
  assertThrows(listen(a.cert, "garbage"), /the TLS key does not load/);
  assertThrows(listen("garbage", a.key), /the TLS certificate does not load/);
  assertThrows(listen(a.cert, b.key), /the TLS key is not the certificate.s/);
  listenTls({ hostname: "127.0.0.1", port: 0, ...a }).close();
});
