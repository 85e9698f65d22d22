"""Hostile cases for the REST API (TestClient, models loaded): every payload through
/v1/classify, unencodable text, mixed given and generated IDs, oversized and malformed bodies."""

from __future__ import annotations

import json

from core.contract import generated_id
from eval.hostile.harness import Case, Harness, Outcome, Row, check, check_records
from eval.hostile.payloads import PAYLOADS, hostile_row

JSON = {"content-type": "application/json"}


def _record(response, row: Row) -> str:
    check(response.status_code == 200, f"HTTP {response.status_code}: {response.text[:300]}")
    return check_records([response.json()], [row])


def _refused(response, code: int, needle: str = "", max_bytes: int = 4_000) -> str:
    check(response.status_code == code, f"HTTP {response.status_code}, expected {code}: "
                                        f"{response.text[:300]}")
    check(len(response.content) <= max_bytes, f"a {len(response.content):,}-byte error body")
    check(needle in response.text, f"{needle!r} not in {response.text[:300]!r}")
    return f"HTTP {code}: {response.text[:160]}"


def payload_case(payload: str) -> Case:
    row = hostile_row(payload)
    # the API validates size and emptiness before anything runs: a 422 instead of a row status
    refused = {"empty-row": "both are empty", "separators-only": "both are empty",
               "abstract-over-cap": "at most", "title-over-cap": "at most"}

    def run(h: Harness) -> Outcome:
        body = {"abstract_id": row.id, "title": row.title, "abstract": row.abstract}
        response = h.api().post("/v1/classify", json=body)
        if payload in refused and refused[payload] is not None:
            return Outcome("error_line", True, _refused(response, 422, refused[payload]))
        return Outcome("row_status" if row.status.startswith("error") else "record", True,
                       _record(response, row))

    kind = ("error_line" if refused.get(payload) else
            "row_status" if row.status.startswith("error") else "record")
    return Case(f"api/classify/{payload}", "api", f"{payload} through /v1/classify", kind, run)


def _raw(h: Harness, body: bytes, path: str = "/v1/classify"):
    return h.api().post(path, content=body, headers=JSON)


def _surrogate_text(h: Harness) -> Outcome:
    response = _raw(h, b'{"abstract_id": "s1", "title": "Melanoma \\ud800", '
                       b'"abstract": "x\\udfff"}')
    row = Row("s1", "Melanoma \ud800", "x\udfff", label="Cancer")
    detail = _record(response, row)
    notes = response.json()["notes"]
    check(sum("surrogate" in n for n in notes) == 2, f"notes {notes}")
    return Outcome("record", True, f"U+FFFD with notes; {detail}")


def _surrogate_id(h: Harness) -> Outcome:
    response = _raw(h, b'{"abstract_id": "a\\ud800", "title": "Melanoma"}')
    check(response.status_code == 200, f"HTTP {response.status_code}: {response.text[:200]}")
    check(response.json()["abstract_id"] == "a\ufffd", f"ID {response.json()['abstract_id']!r}")
    return Outcome("record", True, "ID answered as 'a\\ufffd' with a note")


def _mixed_ids(path: str) -> Case:
    def run(h: Harness) -> Outcome:
        taken = generated_id("Asthma in children", "Inhaled steroids.")
        items = [
            {"abstract_id": "item-2", "title": "Asthma in children", "abstract": "Steroids."},
            {"title": "Lung cancer", "abstract": "NSCLC is a lung cancer."},
            {"title": "Asthma in children", "abstract": "Inhaled steroids."},
            {"abstract_id": taken, "title": "Melanoma", "abstract": "Nivolumab."},
        ]
        response = h.api().post(path, json={"items": items})
        if path == "/v1/jobs":
            check(response.status_code == 202,
                  f"HTTP {response.status_code}: {response.text[:200]}")
            job = response.json()["id"]
            import time

            deadline = time.monotonic() + 60
            while (body := h.api().get(f"/v1/jobs/{job}").json())["status"] not in (
                    "done", "failed"):
                check(time.monotonic() < deadline, "job never finished")
                time.sleep(0.05)
            check(body["status"] == "done", f"job {body['status']}: {body.get('error')}")
            results = body["results"]
        else:
            check(response.status_code == 200,
                  f"HTTP {response.status_code}: {response.text[:200]}")
            results = response.json()["results"]
        ids = [r["abstract_id"] for r in results]
        check(ids[0] == "item-2" and ids[3] == taken, f"given IDs changed: {ids}")
        check(len(set(ids)) == 4, f"IDs collide: {ids}")
        labels = [r["predicted_labels"] for r in results]
        check(labels == [["Non-Cancer"], ["Cancer"], ["Non-Cancer"], ["Cancer"]],
              f"swapped: {labels}")
        return Outcome("record", True, f"IDs {ids}, labels follow the texts")

    return Case(f"api/{path.rsplit('/', 1)[-1]}/mixed-given-and-generated-ids", "api",
                f"{path}: given IDs (one equal to another item's content hash) beside missing ones",
                "record", run)


def _streamed_body(h: Harness) -> Outcome:
    def chunks():
        yield b'{"title": "t", "abstract": "'
        for _ in range(120):
            yield b"x" * 10_000
        yield b'"}'

    response = h.api().post("/v1/classify", content=chunks(), headers=JSON)
    return Outcome("error_line", True, _refused(response, 413, "limit"))


def _simple(name: str, description: str, send, code: int, needle: str = "",
            kind: str = "error_line") -> Case:
    def run(h: Harness) -> Outcome:
        return Outcome(kind, True, _refused(send(h), code, needle))

    return Case(f"api/{name}", "api", description, kind, run)


def cases() -> list[Case]:
    post = lambda body, path="/v1/classify": lambda h: h.api().post(path, json=body)  # noqa: E731
    found = [payload_case(p) for p in PAYLOADS]
    found += [
        Case("api/lone-surrogates-in-text", "api", "JSON \\ud800 escapes in title and abstract",
             "record", _surrogate_text),
        Case("api/lone-surrogate-in-id", "api", "a JSON \\ud800 escape in the ID", "record",
             _surrogate_id),
        _simple("lone-surrogate-in-key", "a \\ud800 escape as a field name",
                lambda h: _raw(h, b'{"title": "t", "\\ud800": "\\ud800"}'), 422),
        _mixed_ids("/v1/batch"),
        _mixed_ids("/v1/jobs"),
        _simple("batch-duplicate-ids", "two items with one ID",
                post({"items": [{"abstract_id": "d", "title": "a"},
                                {"abstract_id": "d", "title": "b"}]},
                     "/v1/batch"), 422, "duplicate"),
        _simple("body-over-limit", "a 1.2 MB body declared by Content-Length",
                lambda h: _raw(h, json.dumps({"title": "t", "abstract": "x" * 1_200_000}).encode()),
                413, "limit"),
        Case("api/body-streamed-over-limit", "api", "a 1.2 MB body streamed without a length",
             "error_line", _streamed_body),
        _simple("422-does-not-echo", "a 150k-character abstract (over the cap) is not echoed",
                post({"title": "t", "abstract": "x" * 150_000}), 422, "chars)"),
        _simple("abstract-not-text", "a number as abstract", post({"abstract": 42}), 422,
                "valid string"),
        _simple("id-line-break", "an ID with a newline",
                post({"abstract_id": "a\nb", "title": "t"}), 422, "line break"),
        _simple("id-too-long", "a 201-character ID", post({"abstract_id": "i" * 201, "title": "t"}),
                422, "at most 200"),
        _simple("malformed-json", "a body that is not JSON", lambda h: _raw(h, b"{not json"), 422,
                "JSON decode error"),
        _simple("invalid-utf8-body", "a body that is not UTF-8",
                lambda h: _raw(h, b'{"title": "caf\xe9"}'), 400, "parsing the body"),
        _simple("extra-field", "an unknown field", post({"title": "t", "pmid": 1}), 422,
                "Extra inputs"),
    ]
    return found
