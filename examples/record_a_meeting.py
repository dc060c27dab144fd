"""Record events through the API, read them back, and print a relationship's timeline.

Run it from anywhere: ``python examples/record_a_meeting.py`` (it writes a log in a temporary
folder, never into events/).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import solidline as sl

ARTICLE = sl.Source(
    title="CPUSA and Vietnamese leaders share aspirations for peace",
    publisher="CPUSA International Department",
    published="2024-10-08",
    quote="CPUSA delegation met with To Lam, General Secretary of the Communist Party of Vietnam",
)


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="solidline-example-"))
    log = sl.JsonlLog(folder / "events")
    log.append(
        [
            sl.EntityDefined(
                entity="cpusa", kind="party", name="Communist Party USA", short_name="CPUSA"
            ),
            sl.EntityDefined(
                entity="cpv", kind="party", name="Communist Party of Vietnam", short_name="CPV"
            ),
        ]
    )
    [meeting] = log.append(
        sl.Meeting(
            id="2024-09-22-cpusa-meets-to-lam",
            when="2024-09-22",
            title="CPUSA delegation meets CPV General Secretary To Lam",
            place="New York",
            sources=[ARTICLE],
            participants=[sl.Participant(entity="cpusa"), sl.Participant(entity="cpv")],
        )
    )
    print(f"recorded {meeting.id} as seq {meeting.seq} at {meeting.recorded_at:%H:%M:%S} UTC")

    # a congress announced for 2026, later held: one entry whose status and date follow the record
    log.append(
        sl.Congress(
            id="cpv-14th-congress",
            when="2026",
            status="scheduled",
            title="CPV 14th National Congress",
            organisation="cpv",
            ordinal=14,
            delegations=["cpusa"],
            sources=[ARTICLE],
        )
    )
    log.append(sl.StatusChanged(target="cpv-14th-congress", status="occurred", when="2026-01"))

    for entry in sl.timeline(log, relationship=("cpv", "cpusa")):
        print(f"{entry.when.display():>20}  {entry.title}  [{entry.status}]")
    print(f"verify: {log.verify().lines} lines, chain intact")


if __name__ == "__main__":
    main()
