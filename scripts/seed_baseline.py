#!/usr/bin/python3
"""The seed design's load phase, in Python: the same-machine baseline for `npm run bench`.

A port of the original xml2pg-ingestion design (lxml + psycopg2), load phase only (no
finalize): the main process streams the XML with lxml.etree.iterparse, clearing each <group>
and deleting processed siblings so memory stays flat, validates each record into a COPY text
row, batches rows by count and approximate bytes, and puts the batches on a bounded
multiprocessing.Queue (backpressure). N writer processes each hold one psycopg2 connection and
COPY ... FROM STDIN every batch into keyless staging tables, committing per batch.

Prints one JSON line: {"seconds", "xmlBytes", "rows", "rejects", "batches"}.
"""
import argparse, io, json, multiprocessing as mp, os, queue, sys, time
from datetime import datetime

import psycopg2
from psycopg2 import sql
from lxml import etree

TABLES = {
    "stg_group": [("group_id", "bigint"), ("code", "text"), ("name", "text"),
                  ("description", "text"), ("created_at", "timestamptz")],
    "stg_event": [("event_id", "bigint"), ("group_id", "bigint"), ("type", "text"),
                  ("occurred_at", "timestamptz"), ("severity", "smallint"),
                  ("source", "text"), ("payload", "text")],
}
MAX_ID = 2 ** 63 - 1  # bigint


class Invalid(ValueError):
    """A record that breaks a rule: counted as a reject, not loaded."""


def required(v, field, empty_ok=True):
    if v is None or (v == "" and not empty_ok):
        raise Invalid(f"missing {field}")
    return v


def int_in(v, field, lo, hi):
    try:
        n = int(v)
    except (TypeError, ValueError):  # TypeError: missing
        n = lo - 1
    if not lo <= n <= hi:
        raise Invalid(f"{field} is not an integer in {lo}..{hi}")
    return str(n)


def timestamp(v, field):
    try:
        datetime.fromisoformat(v[:-1] + "+00:00" if required(v, field).endswith("Z") else v)
    except ValueError:
        raise Invalid(f"{field} is not ISO 8601")
    return v  # loaded as written; rare forms Python accepts but PostgreSQL doesn't (2026-W01-1) fail COPY


def text(el, tag):
    """Text of the child <tag> (None when absent); comments and PIs inside it are skipped."""
    x = el.find(tag)
    if x is None:
        return None
    return (x.text or "") if len(x) == 0 else "".join(x.itertext())


def parse_group(el):
    return (int_in(el.get("id"), "group id", 1, MAX_ID), required(el.get("code"), "code", False),
            required(text(el, "name"), "name"), text(el, "description"),
            timestamp(el.get("created_at"), "created_at"))


def parse_event(el, group_id):
    sev = el.get("severity")
    return (int_in(el.get("id"), "event id", 1, MAX_ID), group_id, required(el.get("type"), "type", False),
            timestamp(el.get("occurred_at"), "occurred_at"),
            None if sev is None else int_in(sev, "severity", 0, 7),
            text(el, "source"), text(el, "payload"))


def copy_line(row):
    """One line of COPY text format: tab-separated, \\N for NULL, \\ \\t \\n \\r escaped."""
    return "\t".join(["\\N" if v is None else
                      v.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
                      for v in row]) + "\n"


def copy_batch(conn, stmt, text):
    for attempt in range(4):  # exponential backoff on transient database errors, as the design has
        try:
            with conn.cursor() as cur:
                cur.copy_expert(stmt, io.StringIO(text))
            conn.commit()
            return conn
        except psycopg2.OperationalError:
            if attempt == 3:
                raise
            time.sleep(0.2 * 2 ** attempt)
            conn.close()
            conn = psycopg2.connect(conn.dsn)


def writer(dsn, schema, batches, results):
    """Consumer process: COPY each batch into its staging table, one commit per batch."""
    rows, n, last = 0, 0, time.time()
    try:
        conn = psycopg2.connect(dsn)
        stmts = {t: sql.SQL("COPY {}.{} FROM STDIN").format(sql.Identifier(schema), sql.Identifier(t))
                 for t in TABLES}
        for table, count, text in iter(batches.get, None):  # None is the poison pill
            conn = copy_batch(conn, stmts[table], text)
            rows, n, last = rows + count, n + 1, time.time()
        conn.close()
        results.put(("ok", rows, n, last))
    except Exception as e:
        results.put(("error", f"writer {os.getpid()}: {type(e).__name__}: {e}".strip(), 0, 0))
        sys.exit(1)


class Pipeline:
    def __init__(self, args):
        self.args = args
        self.batches = mp.Queue(maxsize=args.queue)
        self.results = mp.Queue()
        self.procs = [mp.Process(target=writer, args=(args.dsn, args.schema, self.batches, self.results),
                                 daemon=True) for _ in range(args.writers)]
        self.buf, self.size = {t: [] for t in TABLES}, dict.fromkeys(TABLES, 0)

    def check_writers(self):
        for p in self.procs:
            if p.exitcode not in (None, 0):
                try:  # prefer the error the writer reported
                    status, msg, _, _ = self.results.get(timeout=0.5)
                except queue.Empty:
                    status = None
                raise RuntimeError(msg if status == "error" else f"writer {p.pid} died with exit code {p.exitcode}")

    def put(self, item):
        while True:  # block while the queue is full (backpressure), but never on dead writers
            try:
                return self.batches.put(item, timeout=1)
            except queue.Full:
                self.check_writers()

    def add(self, table, row):
        line = copy_line(row)
        self.buf[table].append(line)
        self.size[table] += len(line)
        if len(self.buf[table]) >= self.args.batch_rows or self.size[table] >= self.args.batch_bytes:
            self.flush(table)

    def flush(self, table):
        if self.buf[table]:
            self.put((table, len(self.buf[table]), "".join(self.buf[table])))
        self.buf[table], self.size[table] = [], 0

    def produce(self):
        rejects = 0
        parser = etree.iterparse(self.args.file, events=("end",), tag="group", recover=True)
        for _, el in parser:
            if el.getparent().getparent() is not None:
                continue  # a <group> nested deeper than <groups><group> is not a record
            events = el.findall("event")
            try:
                group = parse_group(el)
            except Invalid:
                rejects += 1 + len(events)  # a rejected group rejects its events too
            else:
                self.add("stg_group", group)
                for ev in events:
                    try:
                        self.add("stg_event", parse_event(ev, group[0]))
                    except Invalid:
                        rejects += 1
            el.clear()
            while el.getprevious() is not None:
                del el.getparent()[0]
        for t in TABLES:
            self.flush(t)
        if len(parser.error_log):  # recover mode, as in the design: malformed XML is skipped, not fatal
            print(f"seed_baseline: warning: recovered from {len(parser.error_log)} XML errors, first: "
                  f"{parser.error_log[0]}", file=sys.stderr)
        return rejects

    def run(self):
        for p in self.procs:
            p.start()
        start = time.time()
        rejects = self.produce()
        for _ in self.procs:
            self.put(None)
        rows, batches, last = 0, 0, start
        for _ in self.procs:
            while True:
                try:
                    status, r, b, t = self.results.get(timeout=1)
                    break
                except queue.Empty:
                    self.check_writers()
            if status != "ok":
                raise RuntimeError(r)
            rows, batches, last = rows + r, batches + b, max(last, t)
        for p in self.procs:
            p.join()
        self.check_writers()
        return {"seconds": round(last - start, 3), "xmlBytes": os.path.getsize(self.args.file),
                "rows": rows, "rejects": rejects, "batches": batches}

    def abort(self):
        self.batches.cancel_join_thread()  # don't wait at exit to flush batches nobody will read
        for p in self.procs:
            if p.is_alive():
                p.terminate()


def create_tables(dsn, schema):
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        for table, cols in TABLES.items():
            cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {}.{} ({})").format(
                sql.Identifier(schema), sql.Identifier(table),
                sql.SQL(", ").join(sql.SQL("{} " + typ).format(sql.Identifier(c)) for c, typ in cols)))
    conn.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dsn", default="", help="libpq connection string; default: the PG* environment variables")
    for name in ("--schema", "--file"):
        ap.add_argument(name, required=True)
    for name, default in (("--writers", 2), ("--batch-rows", 10000), ("--batch-bytes", 8 << 20), ("--queue", 8)):
        ap.add_argument(name, type=int, default=default)
    args = ap.parse_args()
    if min(args.writers, args.batch_rows, args.batch_bytes, args.queue) < 1:
        ap.error("--writers, --batch-rows, --batch-bytes and --queue must be positive")
    pipeline = None
    try:
        if not os.path.isfile(args.file):
            raise RuntimeError(f"no such file: {args.file}")
        create_tables(args.dsn, args.schema)
        pipeline = Pipeline(args)
        print(json.dumps(pipeline.run()))
    except (Exception, KeyboardInterrupt) as e:
        if pipeline is not None:
            pipeline.abort()
        print(f"seed_baseline: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
