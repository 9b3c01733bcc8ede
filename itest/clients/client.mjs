// Subscribes to an SSE URL with one of the npm client libraries and prints
// every event the application would see as a JSON line on stdout:
//   {"id": "...", "event": "...", "data": "..."}
// Driven by itest/clients_test.go; runs until killed.
//
//   node client.mjs eventsource|fetch-event-source|eventsource-parser URL

import { EventSource } from "eventsource";
import { fetchEventSource } from "@microsoft/fetch-event-source";
import { createParser } from "eventsource-parser";

const [lib, url] = process.argv.slice(2);
const out = (ev) => process.stdout.write(JSON.stringify(ev) + "\n");

switch (lib) {
  case "eventsource": {
    // As a page would: onmessage for unnamed events; named ones are not
    // published by the test.
    const es = new EventSource(url);
    es.onmessage = (e) => out({ id: e.lastEventId, event: e.type, data: e.data });
    break;
  }
  case "fetch-event-source": {
    // The library's README pattern: a server-ended stream resolves unless
    // onclose throws, and onerror returning nothing retries after the
    // server's retry: (default 1 s). It reads document and window.
    globalThis.window = globalThis;
    globalThis.document = { hidden: false, addEventListener() {}, removeEventListener() {} };
    class Retriable extends Error {}
    fetchEventSource(url, {
      openWhenHidden: true,
      onmessage: (m) => out({ id: m.id, event: m.event || "message", data: m.data }),
      onclose: () => {
        throw new Retriable();
      },
      onerror: () => undefined,
    });
    break;
  }
  case "eventsource-parser": {
    // The parser alone, with the loop an application writes around it:
    // fetch, parse, keep the last id, reconnect after retry:.
    let lastId = "";
    let retry = 3000;
    const parser = createParser({
      onEvent: (e) => {
        if (e.id !== undefined) lastId = e.id;
        out({ id: e.id ?? "", event: e.event || "message", data: e.data });
      },
      onRetry: (ms) => (retry = ms),
    });
    for (;;) {
      try {
        const headers = { Accept: "text/event-stream" };
        if (lastId) headers["Last-Event-ID"] = lastId;
        const res = await fetch(url, { headers });
        const decoder = new TextDecoder();
        for await (const chunk of res.body) parser.feed(decoder.decode(chunk, { stream: true }));
      } catch {
        // a cut connection: reconnect as after an end
      }
      parser.reset({ consume: false });
      await new Promise((r) => setTimeout(r, retry));
    }
  }
  default:
    console.error("unknown library", lib);
    process.exit(2);
}
