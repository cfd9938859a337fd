package enforce

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
)

// DecodeRead decodes a remote read body: a snappy block holding a
// prompb.ReadRequest, its declared length checked against maxDecoded
// before it is decompressed. It keeps only the fields the protocol defines:
// each query is rebuilt from its time range, matchers and hints, so nothing
// unknown reaches the upstream. Every error is an *Error of kind BadData.
func DecodeRead(body []byte, maxDecoded, maxQueries int) (*prompb.ReadRequest, error) {
	raw, err := decodeSnappy(body, maxDecoded)
	if err != nil {
		return nil, err
	}
	var in prompb.ReadRequest
	if err := in.Unmarshal(raw); err != nil {
		return nil, &Error{Kind: BadData, Msg: "the body is not a remote read request (prometheus.ReadRequest): " + err.Error()}
	}
	if len(in.Queries) == 0 {
		return nil, &Error{Kind: BadData, Msg: "the remote read request holds no query"}
	}
	if maxQueries > 0 && len(in.Queries) > maxQueries {
		return nil, &Error{Kind: BadData, Msg: fmt.Sprintf("the remote read request holds %d queries, above the limit of %d", len(in.Queries), maxQueries)}
	}
	out := &prompb.ReadRequest{Queries: make([]*prompb.Query, len(in.Queries))}
	for _, t := range in.AcceptedResponseTypes {
		if t != prompb.ReadRequest_SAMPLES && t != prompb.ReadRequest_STREAMED_XOR_CHUNKS {
			return nil, &Error{Kind: BadData, Msg: fmt.Sprintf("unknown accepted response type %d; use SAMPLES or STREAMED_XOR_CHUNKS", int32(t))}
		}
		out.AcceptedResponseTypes = append(out.AcceptedResponseTypes, t)
	}
	for i, q := range in.Queries {
		if q == nil {
			return nil, &Error{Kind: BadData, Msg: fmt.Sprintf("query %d is empty", i)}
		}
		if q.EndTimestampMs < q.StartTimestampMs {
			return nil, &Error{Kind: BadData, Msg: fmt.Sprintf("query %d ends before it starts", i)}
		}
		nq := &prompb.Query{StartTimestampMs: q.StartTimestampMs, EndTimestampMs: q.EndTimestampMs}
		for _, m := range q.Matchers {
			if m == nil {
				return nil, &Error{Kind: BadData, Msg: fmt.Sprintf("query %d holds an empty matcher", i)}
			}
			nq.Matchers = append(nq.Matchers, &prompb.LabelMatcher{Type: m.Type, Name: m.Name, Value: m.Value})
		}
		if h := q.Hints; h != nil {
			nq.Hints = &prompb.ReadHints{StepMs: h.StepMs, Func: h.Func, StartMs: h.StartMs, EndMs: h.EndMs,
				Grouping: h.Grouping, By: h.By, RangeMs: h.RangeMs}
		}
		out.Queries[i] = nq
	}
	return out, nil
}

// ReadMatchers converts a remote read query's matchers. An unknown type,
// invalid UTF-8, an empty name or a regular expression that does not
// compile is an *Error of kind BadData.
func ReadMatchers(q *prompb.Query) ([]*labels.Matcher, error) {
	ms := make([]*labels.Matcher, 0, len(q.Matchers))
	for _, m := range q.Matchers {
		var t labels.MatchType
		switch m.Type {
		case prompb.LabelMatcher_EQ:
			t = labels.MatchEqual
		case prompb.LabelMatcher_NEQ:
			t = labels.MatchNotEqual
		case prompb.LabelMatcher_RE:
			t = labels.MatchRegexp
		case prompb.LabelMatcher_NRE:
			t = labels.MatchNotRegexp
		default:
			return nil, &Error{Kind: BadData, Msg: fmt.Sprintf("unknown matcher type %d", int32(m.Type))}
		}
		if m.Name == "" || !utf8.ValidString(m.Name) || !utf8.ValidString(m.Value) {
			return nil, &Error{Kind: BadData, Msg: "a matcher has an empty name, or is not valid UTF-8"}
		}
		lm, err := labels.NewMatcher(t, m.Name, m.Value)
		if err != nil {
			return nil, &Error{Kind: BadData, Msg: fmt.Sprintf("matcher %s does not compile: %v", quoteName(m.Name), err)}
		}
		ms = append(ms, lm)
	}
	return ms, nil
}

// SelectorString prints matchers as a series selector, for the policy input and
// the audit record.
func SelectorString(ms []*labels.Matcher) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(m.String())
	}
	b.WriteByte('}')
	return b.String()
}

// ConfineRead confines the matchers of one remote read query with the
// intersection rules of a PromQL selector (see the package doc): the
// caller's matchers are kept and the confining ones added. A query that can
// only match series outside the allowed set is an *Error of kind Forbidden;
// a malformed one of kind BadData. It returns the confined matchers, which
// replace q's.
func (en *Enforcer) ConfineRead(q *prompb.Query) ([]*labels.Matcher, error) {
	ms, err := ReadMatchers(q)
	if err != nil {
		return nil, err
	}
	if en.Unrestricted() {
		return ms, nil
	}
	out, err := en.confine(ms, func() string { return SelectorString(ms) })
	if err != nil {
		return nil, err
	}
	q.Matchers = make([]*prompb.LabelMatcher, len(out))
	for i, m := range out {
		q.Matchers[i] = &prompb.LabelMatcher{Type: protoMatchType(m.Type), Name: m.Name, Value: m.Value}
	}
	return out, nil
}

// CheckReadResponse checks every series of a SAMPLES answer as defence in
// depth: a series the caller may not see is an error wrapping ErrUpstream,
// and nothing of the answer may be sent. It returns the series and samples
// counted.
func (en *Enforcer) CheckReadResponse(resp *prompb.ReadResponse) (series, samples int, err error) {
	for _, r := range resp.Results {
		if r == nil {
			continue
		}
		for _, ts := range r.Timeseries {
			if ts == nil {
				continue
			}
			if !en.Unrestricted() && !en.protoAllowed(ts.Labels) {
				return series, samples, fmt.Errorf("%w: the upstream returned a series outside the caller's confinement", ErrUpstream)
			}
			series++
			samples += len(ts.Samples) + len(ts.Histograms)
		}
	}
	return series, samples, nil
}

// CheckChunkedFrame checks the series of one frame of a STREAMED_XOR_CHUNKS
// answer (a prompb.ChunkedReadResponse) as CheckReadResponse does, and that
// its query index is below queries. It returns the series and chunks
// counted.
func (en *Enforcer) CheckChunkedFrame(data []byte, queries int) (series, chunks int, err error) {
	var cr prompb.ChunkedReadResponse
	if err := cr.Unmarshal(data); err != nil {
		return 0, 0, fmt.Errorf("%w: a streamed frame is not a ChunkedReadResponse: %v", ErrUpstream, err) //nolint:errorlint // ErrUpstream alone classifies the error
	}
	if cr.QueryIndex < 0 || cr.QueryIndex >= int64(queries) {
		return 0, 0, fmt.Errorf("%w: a streamed frame names query %d of %d", ErrUpstream, cr.QueryIndex, queries)
	}
	for _, s := range cr.ChunkedSeries {
		if s == nil {
			continue
		}
		if !en.Unrestricted() && !en.protoAllowed(s.Labels) {
			return series, chunks, fmt.Errorf("%w: the upstream streamed a series outside the caller's confinement", ErrUpstream)
		}
		series++
		chunks += len(s.Chunks)
	}
	return series, chunks, nil
}

// castagnoli is the CRC-32C table of the streamed remote read frames.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrFrameTooLarge is a streamed frame above the reader's limit.
var ErrFrameTooLarge = errors.New("streamed remote read frame above the limit")

// ReadFrame reads one frame of a STREAMED_XOR_CHUNKS answer, as
// Prometheus' ChunkedWriter writes it: the data's length as a uvarint, its
// CRC-32C (Castagnoli) as 4 big-endian bytes, then the data. It returns the
// whole frame, to be sent on as read, and its data, both in buf's storage
// when it is large enough. A frame whose length is above maxFrame or whose
// checksum does not match is an error wrapping ErrUpstream; io.EOF means
// the stream ended cleanly between frames.
func ReadFrame(r *bufio.Reader, maxFrame int, buf []byte) (frame, data []byte, err error) {
	size, err := binary.ReadUvarint(r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, io.EOF
		}
		return nil, nil, fmt.Errorf("%w: streamed frame length: %v", ErrUpstream, err) //nolint:errorlint // ErrUpstream alone classifies the error
	}
	if maxFrame < 0 || size > uint64(maxFrame) { //nolint:gosec // G115: maxFrame is not negative here
		return nil, nil, fmt.Errorf("%w: %w: %d bytes, limit %d", ErrUpstream, ErrFrameTooLarge, size, maxFrame)
	}
	var hdr [binary.MaxVarintLen64 + 4]byte
	n := binary.PutUvarint(hdr[:], size)
	total := n + 4 + int(size) //nolint:gosec // G115: size is at most maxFrame, an int
	if cap(buf) < total {
		buf = make([]byte, total)
	}
	frame = buf[:total]
	copy(frame, hdr[:n])
	if _, err := io.ReadFull(r, frame[n:]); err != nil {
		return nil, nil, fmt.Errorf("%w: streamed frame cut short: %v", ErrUpstream, err) //nolint:errorlint // ErrUpstream alone classifies the error
	}
	data = frame[n+4:]
	if binary.BigEndian.Uint32(frame[n:n+4]) != crc32.Checksum(data, castagnoli) {
		return nil, nil, fmt.Errorf("%w: streamed frame checksum mismatch", ErrUpstream)
	}
	return frame, data, nil
}

// AppendFrame appends data as one streamed frame to b.
func AppendFrame(b, data []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(data)))
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(data, castagnoli))
	return append(b, data...)
}

// DecodeReadResponse decodes a SAMPLES answer: a snappy block holding a
// prompb.ReadResponse, its declared length checked against maxDecoded. An
// error wraps ErrUpstream.
func DecodeReadResponse(body []byte, maxDecoded int) (*prompb.ReadResponse, error) {
	raw, err := decodeSnappy(body, maxDecoded)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUpstream, err) //nolint:errorlint // ErrUpstream alone classifies the error
	}
	var resp prompb.ReadResponse
	if err := resp.Unmarshal(raw); err != nil {
		return nil, fmt.Errorf("%w: not a ReadResponse: %v", ErrUpstream, err) //nolint:errorlint // ErrUpstream alone classifies the error
	}
	return &resp, nil
}

// EncodeRead encodes req as a remote read body.
func EncodeRead(req *prompb.ReadRequest) ([]byte, error) {
	raw, err := req.Marshal()
	if err != nil {
		return nil, err
	}
	return snappy.Encode(nil, raw), nil
}

// protoMatchType is the remote read type of a matcher type.
func protoMatchType(t labels.MatchType) prompb.LabelMatcher_Type {
	switch t {
	case labels.MatchNotEqual:
		return prompb.LabelMatcher_NEQ
	case labels.MatchRegexp:
		return prompb.LabelMatcher_RE
	case labels.MatchNotRegexp:
		return prompb.LabelMatcher_NRE
	default:
		return prompb.LabelMatcher_EQ
	}
}
