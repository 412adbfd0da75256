// A real socket.io-client@4 (npm) driven by sio_client_test. Default options (HTTP
// long-polling, then the upgrade), or mode "websocket" for a WebSocket-only connection.
// Prints one line "RESULT <json>" with what it saw.
//
// usage: node node_client.js URL TOKEN TICKS MODE
const { io } = require("socket.io-client");

const [url, token, ticksArg, mode] = process.argv.slice(2);
const ticksWanted = Number(ticksArg);
const options = { auth: { token } };
if (mode === "websocket") options.transports = ["websocket"];

const out = {};
const finish = () => {
  console.log("RESULT " + JSON.stringify(out));
  process.exit(0);
};
const timer = setTimeout(() => { out.timeout = true; finish(); }, 30000);

const socket = io(url, options);
socket.on("connect_error", (err) => {
  out.connect_error = err.message;
  clearTimeout(timer);
  finish();
});
socket.on("question", (x, ack) => ack(x + 1));

const waitFor = (cond, ms) => new Promise((resolve) => {
  const start = Date.now();
  const tick = () => {
    if (cond()) return resolve(true);
    if (Date.now() - start > ms) return resolve(false);
    setTimeout(tick, 5);
  };
  tick();
});

socket.on("connect", async () => {
  const engine = socket.io.engine;
  out.ack = await socket.timeout(10000).emitWithAck("echo", { a: 1, b: [1, 2] });
  const bin = await socket.timeout(10000).emitWithAck("echo", Buffer.from([0, 1, 254, 255]));
  out.binary_ack = [...bin];
  const binaryEvent = new Promise((resolve) => socket.once("binary-back", resolve));
  await socket.timeout(10000).emitWithAck("emit-binary", Buffer.from([7, 8]));
  out.binary_event = [...(await binaryEvent)];

  const ticks = [];
  socket.on("tick", (i) => ticks.push(i));
  socket.emit("stream", ticksWanted);
  out.ticks_complete = await waitFor(() => ticks.length >= ticksWanted, 20000);
  out.ticks = ticks;

  const answer = new Promise((resolve) => socket.once("answer-received", resolve));
  socket.emit("server-ack", 41);
  out.answer = await answer;
  out.answered = true;
  out.upgraded = await waitFor(() => engine.transport.name === "websocket", 10000);
  out.transport = engine.transport.name;
  socket.disconnect();
  clearTimeout(timer);
  finish();
});
