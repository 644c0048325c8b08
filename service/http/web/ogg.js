// A minimal Ogg page writer and reader for Opus packets (RFC 3533, RFC 7845), enough for the WebSocket
// protocol of /api/chat: WebCodecs hands us raw Opus packets, the server speaks Ogg pages. One packet per
// page on the way out (lowest latency); pages split across WebSocket messages are fine on the way in.

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let r = i << 24;
    for (let j = 0; j < 8; j++) r = r & 0x80000000 ? (r << 1) ^ 0x04c11db7 : r << 1;
    table[i] = r >>> 0;
  }
  return table;
})();

function oggCrc(bytes) {
  let crc = 0;
  for (let i = 0; i < bytes.length; i++) crc = ((crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ bytes[i]) & 0xff]) >>> 0;
  return crc;
}

const ascii = (s) => new TextEncoder().encode(s);

export class OggOpusWriter {
  constructor(sampleRate, preSkip48k = 312) {
    this.serial = (Math.random() * 0xffffffff) >>> 0;
    this.sequence = 0;
    this.sampleRate = sampleRate;
    this.preSkip = preSkip48k;
  }

  // The OpusHead and OpusTags pages that must start the stream.
  headers() {
    const head = new Uint8Array(19);
    head.set(ascii("OpusHead"));
    const v = new DataView(head.buffer);
    v.setUint8(8, 1); // version
    v.setUint8(9, 1); // mono
    v.setUint16(10, this.preSkip, true);
    v.setUint32(12, this.sampleRate, true);
    v.setInt16(16, 0, true);
    v.setUint8(18, 0);
    const vendor = ascii("monologue web page (WebCodecs)");
    const tags = new Uint8Array(8 + 4 + vendor.length + 4);
    tags.set(ascii("OpusTags"));
    new DataView(tags.buffer).setUint32(8, vendor.length, true);
    tags.set(vendor, 12);
    return concat([this.page(head, 0, 0x02), this.page(tags, 0, 0)]);
  }

  // One page holding one packet; granule = 48 kHz samples up to the end of this packet.
  page(packet, granule, headerType = 0) {
    const lacing = [];
    for (let left = packet.length; ; left -= 255) {
      lacing.push(Math.min(left, 255));
      if (left < 255) break;
    }
    const page = new Uint8Array(27 + lacing.length + packet.length);
    page.set(ascii("OggS"));
    const v = new DataView(page.buffer);
    v.setUint8(4, 0);
    v.setUint8(5, headerType);
    v.setUint32(6, granule % 0x100000000, true);
    v.setUint32(10, Math.floor(granule / 0x100000000), true);
    v.setUint32(14, this.serial, true);
    v.setUint32(18, this.sequence++, true);
    v.setUint32(22, 0, true);
    v.setUint8(26, lacing.length);
    page.set(lacing, 27);
    page.set(packet, 27 + lacing.length);
    v.setUint32(22, oggCrc(page), true);
    return page;
  }
}

// Feed bytes in any chunking; get back whole packets (header packets flagged) in order.
export class OggReader {
  constructor() {
    this.pending = new Uint8Array(0);
    this.partial = []; // pieces of a packet continued on the next page
  }

  push(bytes) {
    this.pending = concat([this.pending, bytes]);
    const packets = [];
    for (;;) {
      const p = this.pending;
      if (p.length < 27) break;
      if (p[0] !== 0x4f || p[1] !== 0x67 || p[2] !== 0x67 || p[3] !== 0x53) {
        throw new Error("not an Ogg page (no OggS capture pattern)");
      }
      const segments = p[26];
      const headerLength = 27 + segments;
      if (p.length < headerLength) break;
      let bodyLength = 0;
      for (let i = 0; i < segments; i++) bodyLength += p[27 + i];
      if (p.length < headerLength + bodyLength) break;
      let at = headerLength;
      let size = 0;
      for (let i = 0; i < segments; i++) {
        const lace = p[27 + i];
        size += lace;
        if (lace < 255) {
          this.partial.push(p.subarray(at, at + size));
          packets.push(concat(this.partial));
          this.partial = [];
          at += size;
          size = 0;
        }
      }
      if (size > 0) this.partial.push(p.subarray(at, at + size).slice());
      this.pending = p.slice(headerLength + bodyLength);
    }
    return packets.map((data) => ({ data, header: startsWith(data, "OpusHead") || startsWith(data, "OpusTags") }));
  }
}

function startsWith(bytes, text) {
  if (bytes.length < text.length) return false;
  for (let i = 0; i < text.length; i++) if (bytes[i] !== text.charCodeAt(i)) return false;
  return true;
}

export function concat(parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
