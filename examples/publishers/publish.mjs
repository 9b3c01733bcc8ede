// Publishes a message to hasses twice: on the control port (one JSON line,
// answered with the event id) and through the HTTP API. No dependencies
// (Node 18 or later, for fetch).
//   node publish.mjs TOKEN MESSAGE
// Environment: HASSES_CTL (127.0.0.1:8085), HASSES_PUB
// (http://127.0.0.1:8086/publish), HASSES_CTL_SECRET (if the server has one).
import net from "node:net";

const [token = "room1", message = "hello from Node"] = process.argv.slice(2);
const [host, port] = (process.env.HASSES_CTL || "127.0.0.1:8085").split(/:(?=\d+$)/);
const pub = process.env.HASSES_PUB || "http://127.0.0.1:8086/publish";
const secret = process.env.HASSES_CTL_SECRET || "";
const body = JSON.stringify({ token, data: message });

// Control port (a plain "token=message;" works too, without a reply).
const reply = await new Promise((resolve, reject) => {
  const s = net.connect(Number(port), host.replace(/^\[|\]$/g, ""), () =>
    s.write((secret ? `auth ${secret}\n` : "") + body + "\n"));
  let buf = "";
  s.setTimeout(5000, () => s.destroy(new Error("control port: no answer")));
  s.on("error", reject);
  s.on("data", (d) => {
    buf += d;
    const line = buf.split("\n").find((l, i, all) => i < all.length - 1 && !l.startsWith('{"auth"'));
    if (line !== undefined) { s.end(); resolve(line); }
  });
});
console.log("control port:", reply);

// HTTP API.
const headers = { "Content-Type": "application/json" };
if (secret) headers.Authorization = `Bearer ${secret}`;
const res = await fetch(pub, { method: "POST", headers, body });
console.log("HTTP API:", (await res.text()).trim());
if (!res.ok) process.exit(1);
