"""A writer process for the crash and concurrency tests in test_log_jsonl.py.

    python log_writer.py LOG_PATH TAG [COUNT] [--wait]

Opens the JSON Lines log at LOG_PATH, defines the entity its meetings name, prints ``ready``
and (with ``--wait``) waits for a line on standard input, so that several writers can start at
once. Then it appends batches of 1 to 8 meetings, COUNT events in all (forever without COUNT).
The events of batch ``k`` of ``n`` events are ``TAG-b<k>-<i>of<n>``, so a reader can tell
whether a batch is whole. After each append returns it prints ``<first seq> <last seq> TAG-b<k>``
and flushes: what it printed was recorded.
"""

from __future__ import annotations

import itertools
import random
import sys

from solidline import EntityDefined, JsonlLog, Meeting, Participant, Source

SOURCE = Source(title="Report", publisher="Nhân Dân", published="2024-09-22")


def batch(tag: str, number: int, size: int) -> list[Meeting]:
    return [
        Meeting(
            id=f"{tag}-b{number}-{i}of{size}",
            when="2024-09-22",
            title=f"Cuộc gặp {tag} {number}.{i} <b>ພັກ</b>",
            sources=[SOURCE],
            participants=[Participant(entity="cpv", role="host")],
        )
        for i in range(size)
    ]


def main(argv: list[str]) -> None:
    path, tag = argv[0], argv[1]
    count = int(argv[2]) if len(argv) > 2 and argv[2].isdigit() else None
    chance = random.Random(tag)
    log = JsonlLog(path)
    log.append(EntityDefined(entity="cpv", kind="party", name="Đảng Cộng sản Việt Nam"))
    print("ready", flush=True)
    if "--wait" in argv:
        sys.stdin.readline()
    written = 0
    for number in itertools.count():
        if count is not None and written >= count:
            break
        size = chance.randint(1, 8) if count is None else min(chance.randint(1, 8), count - written)
        records = log.append(batch(tag, number, size))
        written += size
        print(records[0].seq, records[-1].seq, f"{tag}-b{number}", flush=True)
    log.close()


if __name__ == "__main__":
    main(sys.argv[1:])
