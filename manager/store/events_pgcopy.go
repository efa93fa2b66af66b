package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
)

// pgCopyBuf holds one batch in PostgreSQL's binary COPY format. The row
// shape is fixed (eventCols), so writing it directly costs a few appends
// per field; pgx's generic CopyFrom boxed every value into an interface
// and ran an encode plan per field, and its garbage (about 450 bytes an
// event) was fresh heap for the kernel to fault in at ingest rates.
type pgCopyBuf struct{ b []byte }

var pgCopyBufs = sync.Pool{New: func() any { return &pgCopyBuf{b: make([]byte, 0, 1<<20)} }}

// pgCopySignature starts every binary COPY stream: signature, flags, and
// the length of the (empty) header extension.
var pgCopySignature = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

func encodeEventsCopy(dst []byte, tenant, computer string, recv int64, rows []EventRow) []byte {
	dst = append(dst, pgCopySignature...)
	for i := range rows {
		e := &rows[i]
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(eventCols)))
		dst = copyText(dst, tenant)
		dst = copyText(dst, e.ID)
		dst = copyText(dst, computer)
		dst = copyInt8(dst, e.Time)
		dst = copyText(dst, e.Kind)
		dst = copyText(dst, e.Module)
		dst = binary.BigEndian.AppendUint32(dst, 4)
		dst = binary.BigEndian.AppendUint32(dst, uint32(e.Severity))
		dst = copyText(dst, e.RuleID)
		dst = copyText(dst, e.Message)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(e.Data)))
		dst = append(dst, e.Data...)
		dst = copyInt8(dst, recv)
	}
	return binary.BigEndian.AppendUint16(dst, 0xffff) // trailer: field count -1
}

func copyText(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}

func copyInt8(dst []byte, v int64) []byte {
	dst = binary.BigEndian.AppendUint32(dst, 8)
	return binary.BigEndian.AppendUint64(dst, uint64(v))
}

// copyEventsSQL is the COPY statement for events or its staging table.
func copyEventsSQL(table string) string {
	return "COPY " + table + " (" + strings.Join(eventCols, ", ") + ") FROM STDIN WITH (FORMAT binary)"
}

// copyEvents streams an encoded batch into table (events or the staging
// table) on the transaction's connection.
func copyEvents(ctx context.Context, pc *pgconn.PgConn, table string, stream []byte) (int64, error) {
	tag, err := pc.CopyFrom(ctx, bytes.NewReader(stream), copyEventsSQL(table))
	if err != nil {
		return 0, fmt.Errorf("copying events: %w", err)
	}
	return tag.RowsAffected(), nil
}
