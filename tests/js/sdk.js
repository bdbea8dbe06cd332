// The centrifuge-js 5 client the drivers use, chosen by the environment:
//   HERALD_FORMAT    "protobuf": the SDK's protobuf build (data as bytes)
//   HERALD_TRANSPORT "http_stream" | "sse": the emulation transports (same
//                    host, /connection/<transport> and /emulation) instead
//                    of the WebSocket at HERALD_WS
// client(options) returns a Centrifuge for HERALD_WS with those settings;
// data(d) turns a publication's data into the JSON value in both formats.
'use strict';
const WebSocket = require('ws');

const protobuf = process.env.HERALD_FORMAT === 'protobuf';
const transport = process.env.HERALD_TRANSPORT || 'websocket';
const { Centrifuge } = require(protobuf ? 'centrifuge/build/protobuf' : 'centrifuge');

function client(options) {
  const ws = process.env.HERALD_WS;
  const base = ws.replace(/^ws/, 'http').replace(/\/connection\/websocket.*$/, '');
  if (transport === 'websocket')
    return new Centrifuge(ws, { websocket: WebSocket, ...options });
  return new Centrifuge([{ transport, endpoint: `${base}/connection/${transport}` }], {
    emulationEndpoint: `${base}/emulation`, fetch, readableStream: ReadableStream,
    eventsource: require('eventsource'), ...options,
  });
}

// Publication data as the app sees it: JSON values, or (protobuf) the JSON
// text's bytes, parsed here.
const data = (d) => (d instanceof Uint8Array ? JSON.parse(new TextDecoder().decode(d)) : d);

module.exports = { client, data, protobuf, transport };
