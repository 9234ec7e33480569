// examples/realtime.mjs: a realtime session on the local host's direct WebSocket (npm start);
// on Azure, POST /v1/realtime/sessions first and connect to the url it returns (see Realtime).
import WebSocket from 'ws';

const base = (process.env.GATEWAY_URL ?? 'http://localhost:7071/v1').replace(/^http/, 'ws');
const ws = new WebSocket(`${base}/realtime?model=gpt-4o-mini-realtime-preview`, {
  headers: { Authorization: `Bearer ${process.env.GATEWAY_KEY ?? 'your-proxy-api-key'}` },
});

ws.on('open', () => {
  // Azure's GA realtime protocol: a session.update names its session type.
  ws.send(JSON.stringify({ type: 'session.update', session: { type: 'realtime', audio: { output: { voice: 'alloy' } } } }));
  ws.send(JSON.stringify({ type: 'response.create' }));
});
ws.on('message', (data) => {
  const event = JSON.parse(data.toString());
  console.log(event.type);
  if (event.type === 'response.done') ws.close();
});
ws.on('error', (err) => {
  console.error(err.message);
  process.exitCode = 1;
});
