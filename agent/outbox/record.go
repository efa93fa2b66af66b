package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// A record on disk is an 8-byte header — payload length and CRC-32C of the
// payload, both little-endian uint32 — followed by the payload (one event as
// JSON). The CRC catches torn and bit-rotted writes; the length bound keeps a
// corrupt header from asking for gigabytes.
const (
	headerSize = 8
	// MaxRecordBytes bounds one event's encoded size.
	MaxRecordBytes = 4 << 20
	// minRecordBytes rejects empty payloads: crc32c("") is 0, so a tail of
	// zeros left by a crash would otherwise read as valid empty records.
	minRecordBytes = 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt marks the point where a segment stops being readable.
var errCorrupt = errors.New("corrupt record")

// appendRecord appends the framed payload to dst.
func appendRecord(dst, payload []byte) []byte {
	var h [headerSize]byte
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(h[4:8], crc32.Checksum(payload, castagnoli))
	dst = append(dst, h[:]...)
	return append(dst, payload...)
}

// decodeRecord reads the record at the start of b. It returns the payload
// and the bytes consumed; io-style short input (a torn tail) and a bad CRC
// are both errCorrupt, because after a crash either means "stop here".
func decodeRecord(b []byte) (payload []byte, n int, err error) {
	if len(b) < headerSize {
		return nil, 0, fmt.Errorf("%w: short header (%d bytes)", errCorrupt, len(b))
	}
	size := binary.LittleEndian.Uint32(b[0:4])
	sum := binary.LittleEndian.Uint32(b[4:8])
	if size < minRecordBytes || size > MaxRecordBytes {
		return nil, 0, fmt.Errorf("%w: length %d out of range", errCorrupt, size)
	}
	end := headerSize + int(size)
	if len(b) < end {
		return nil, 0, fmt.Errorf("%w: short payload (%d of %d bytes)", errCorrupt, len(b)-headerSize, size)
	}
	p := b[headerSize:end]
	if crc32.Checksum(p, castagnoli) != sum {
		return nil, 0, fmt.Errorf("%w: crc mismatch", errCorrupt)
	}
	return p, end, nil
}

// decodeSegment splits a segment's bytes into payloads. valid is the length
// of the readable prefix; everything after it is a torn or corrupt tail.
func decodeSegment(b []byte) (payloads [][]byte, valid int) {
	for valid < len(b) {
		p, n, err := decodeRecord(b[valid:])
		if err != nil {
			return payloads, valid
		}
		payloads = append(payloads, p)
		valid += n
	}
	return payloads, valid
}
