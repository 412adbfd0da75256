// The reference fan-out for bench/socketio/run.sh: a Node socket.io@4 server (default options)
// that emits RATE events per second to every connected client, each a ~200-byte JSON envelope
// shaped like bus-bridge's md.quotes events, stamped with CLOCK_REALTIME ns ("ts") when emitted.
//   node node_server.mjs PORT RATE
import { createServer } from "node:http";
import { Server } from "socket.io";

const [port, rate] = process.argv.slice(2).map(Number);
const http = createServer();
const io = new Server(http);
// Wall-clock ns from a monotonic source: Date.now() has only ms resolution.
const base = BigInt(Date.now()) * 1000000n - process.hrtime.bigint();
let seq = 0;
const event = () => {
  seq += 1;
  return {
    topic: "md.quotes", seq, ts: Number(base + process.hrtime.bigint()), producer: process.pid,
    id: "bench/md.quotes/" + seq, type: "shmbus.md.Quote",
    data: { symbol: "AAPL", seq, bid_px: 189.91, bid_qty: 300, ask_px: 189.93, ask_qty: 200 },
  };
};
// RATE per second in 1 ms ticks; a late tick catches up so the rate holds while the loop can.
const start = process.hrtime.bigint();
let sent = 0;
setInterval(() => {
  const due = Math.floor((Number(process.hrtime.bigint() - start) / 1e9) * rate);
  for (; sent < due; sent++) io.emit("md.quotes", event());
}, 1);
http.listen(port, "127.0.0.1", () => console.log("READY"));
