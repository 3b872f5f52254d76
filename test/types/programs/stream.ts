// createWebSocketStream with stream.pipeline.
import { pipeline } from 'stream/promises';
import { Transform } from 'stream';
import WebSocket, { createWebSocketStream } from 'ws-native';

async function echo(url: string): Promise<void> {
  const ws = new WebSocket(url);
  const duplex = createWebSocketStream(ws, { encoding: 'utf8', readableObjectMode: false });
  duplex.on('error', console.error);
  const upper = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      cb(null, chunk.toString().toUpperCase());
    },
  });
  await pipeline(duplex, upper, duplex);
  const other = WebSocket.createWebSocketStream(new WebSocket(url));
  other.end('bye');
}
void echo('ws://127.0.0.1:1');
