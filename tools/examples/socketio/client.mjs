// A bus client over Socket.IO (socket.io-client@4, default options), the same shape as
// client.py. Run against bus-bridge's socketio endpoint:
//   npm install socket.io-client@4 && node client.mjs http://127.0.0.1:9464 md.quotes md.trades
import { io } from "socket.io-client";

export class Client {
  constructor(url, consumer, topics, token) {
    this.topics = topics;
    this.socket = io(url, { auth: token ? { consumer, token } : { consumer }, autoConnect: false });
    this.socket.on("connect", async () =>
      console.log("subscribed", await this.socket.emitWithAck("subscribe", this.topics)));
    this.socket.on("missed", (m) => console.error("missed", m.count, "messages"));
  }

  registerHandler(topic, fn) {
    // envelope: {"topic","seq","ts","producer","id","type","data",...}
    this.socket.on(topic, (envelope) => {
      fn(envelope.data, envelope);
      this.socket.emit("consumed", envelope.id); // consumption confirmation
    });
  }

  async publish(topic, message, producer, messageId) {
    const ack = await this.socket.timeout(5000).emitWithAck("publish",
      { topic, message, producer, message_id: messageId });
    if (!ack.ok) throw new Error(ack.error);
    return ack.seq;
  }

  start() { this.socket.connect(); }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [url, ...topics] = process.argv.slice(2);
  const client = new Client(url, "example-node", topics.length ? topics : ["md.quotes"]);
  for (const t of client.topics) {
    client.registerHandler(t, (data, env) => console.log(env.topic, env.seq, data));
  }
  client.start();
}
