// A minimal MessagePack encoder/decoder for the Rust moshi-server protocols (/api/asr-streaming,
// /api/tts_streaming). Debian packages no browser MessagePack library (apt-cache search msgpack: none for
// JavaScript) and the page must work offline without a build step, so the few types these protocols use
// are written here: nil, booleans, integers, float32/64, strings, binary, arrays, maps.
// A Float32Array is encoded as an array of float32 (what rmp_serde reads into a Vec<f32>).

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();

class Writer {
  constructor() {
    this.buffer = new Uint8Array(1024);
    this.view = new DataView(this.buffer.buffer);
    this.length = 0;
  }
  reserve(n) {
    if (this.length + n <= this.buffer.length) return;
    const bigger = new Uint8Array(Math.max(this.buffer.length * 2, this.length + n));
    bigger.set(this.buffer.subarray(0, this.length));
    this.buffer = bigger;
    this.view = new DataView(bigger.buffer);
  }
  u8(v) { this.reserve(1); this.view.setUint8(this.length, v); this.length += 1; }
  u16(v) { this.reserve(2); this.view.setUint16(this.length, v); this.length += 2; }
  u32(v) { this.reserve(4); this.view.setUint32(this.length, v); this.length += 4; }
  f32(v) { this.reserve(4); this.view.setFloat32(this.length, v); this.length += 4; }
  f64(v) { this.reserve(8); this.view.setFloat64(this.length, v); this.length += 8; }
  bytes(b) { this.reserve(b.length); this.buffer.set(b, this.length); this.length += b.length; }
}

function writeValue(w, v) {
  if (v === null || v === undefined) w.u8(0xc0);
  else if (v === false) w.u8(0xc2);
  else if (v === true) w.u8(0xc3);
  else if (typeof v === "number") writeNumber(w, v);
  else if (typeof v === "string") writeString(w, v);
  else if (v instanceof Float32Array) {
    writeLength(w, v.length, 0x90, 0xdc);
    w.reserve(5 * v.length);
    for (let i = 0; i < v.length; i++) {
      w.u8(0xca);
      w.f32(v[i]);
    }
  } else if (v instanceof Uint8Array) {
    if (v.length < 0x100) { w.u8(0xc4); w.u8(v.length); }
    else if (v.length < 0x10000) { w.u8(0xc5); w.u16(v.length); }
    else { w.u8(0xc6); w.u32(v.length); }
    w.bytes(v);
  } else if (Array.isArray(v)) {
    writeLength(w, v.length, 0x90, 0xdc);
    for (const item of v) writeValue(w, item);
  } else if (typeof v === "object") {
    const keys = Object.keys(v).filter((k) => v[k] !== undefined);
    writeLength(w, keys.length, 0x80, 0xde);
    for (const k of keys) {
      writeString(w, k);
      writeValue(w, v[k]);
    }
  } else throw new Error(`msgpack: cannot encode ${typeof v}`);
}

// fix* (up to 15 items) or the 16-/32-bit length forms (code16, code16 + 1).
function writeLength(w, n, fixBase, code16) {
  if (n < 16) w.u8(fixBase | n);
  else if (n < 0x10000) { w.u8(code16); w.u16(n); }
  else { w.u8(code16 + 1); w.u32(n); }
}

function writeString(w, s) {
  const b = utf8Encoder.encode(s);
  if (b.length < 32) w.u8(0xa0 | b.length);
  else if (b.length < 0x100) { w.u8(0xd9); w.u8(b.length); }
  else if (b.length < 0x10000) { w.u8(0xda); w.u16(b.length); }
  else { w.u8(0xdb); w.u32(b.length); }
  w.bytes(b);
}

function writeNumber(w, v) {
  if (!Number.isInteger(v) || Math.abs(v) > 0xffffffff) { w.u8(0xcb); w.f64(v); }
  else if (v >= 0 && v < 128) w.u8(v);
  else if (v < 0 && v >= -32) w.u8(v & 0xff);
  else if (v >= 0) { w.u8(0xce); w.u32(v); }
  else { w.u8(0xd2); w.reserve(4); w.view.setInt32(w.length, v); w.length += 4; }
}

export function encode(value) {
  const w = new Writer();
  writeValue(w, value);
  return w.buffer.slice(0, w.length);
}

export function decode(bytes) {
  const data = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let at = 0;
  const need = (n) => {
    if (at + n > data.length) throw new Error("msgpack: truncated message");
  };
  const str = (n) => { need(n); const s = utf8Decoder.decode(data.subarray(at, at + n)); at += n; return s; };
  const bin = (n) => { need(n); const b = data.slice(at, at + n); at += n; return b; };
  const array = (n) => { const a = new Array(n); for (let i = 0; i < n; i++) a[i] = read(); return a; };
  const map = (n) => { const m = {}; for (let i = 0; i < n; i++) { const k = read(); m[k] = read(); } return m; };
  const num = (size, get) => { need(size); const v = get(at); at += size; return v; };
  function read() {
    need(1);
    const t = data[at++];
    if (t < 0x80) return t;
    if (t < 0x90) return map(t & 0x0f);
    if (t < 0xa0) return array(t & 0x0f);
    if (t < 0xc0) return str(t & 0x1f);
    if (t >= 0xe0) return t - 0x100;
    switch (t) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return bin(num(1, (i) => view.getUint8(i)));
      case 0xc5: return bin(num(2, (i) => view.getUint16(i)));
      case 0xc6: return bin(num(4, (i) => view.getUint32(i)));
      case 0xca: return num(4, (i) => view.getFloat32(i));
      case 0xcb: return num(8, (i) => view.getFloat64(i));
      case 0xcc: return num(1, (i) => view.getUint8(i));
      case 0xcd: return num(2, (i) => view.getUint16(i));
      case 0xce: return num(4, (i) => view.getUint32(i));
      case 0xcf: return num(8, (i) => Number(view.getBigUint64(i)));
      case 0xd0: return num(1, (i) => view.getInt8(i));
      case 0xd1: return num(2, (i) => view.getInt16(i));
      case 0xd2: return num(4, (i) => view.getInt32(i));
      case 0xd3: return num(8, (i) => Number(view.getBigInt64(i)));
      case 0xd9: return str(num(1, (i) => view.getUint8(i)));
      case 0xda: return str(num(2, (i) => view.getUint16(i)));
      case 0xdb: return str(num(4, (i) => view.getUint32(i)));
      case 0xdc: return array(num(2, (i) => view.getUint16(i)));
      case 0xdd: return array(num(4, (i) => view.getUint32(i)));
      case 0xde: return map(num(2, (i) => view.getUint16(i)));
      case 0xdf: return map(num(4, (i) => view.getUint32(i)));
      default: throw new Error(`msgpack: unsupported type byte 0x${t.toString(16)}`);
    }
  }
  const value = read();
  if (at !== data.length) throw new Error("msgpack: trailing bytes after the message");
  return value;
}
