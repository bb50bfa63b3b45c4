"""SOP playbooks (`sop/*.yaml`, all but `stages.yaml`): typed models, `file:line` validation, pure timing.

One playbook per file; ops edit them in git and check them with `siyu sop validate`::

    id: new_contact                # snake_case, unique across sop/
    name: 新客培育
    enabled: true                  # default true
    marketing: true                # default true; an unsubscribed customer gets no marketing steps
    trigger: {stage_entered: 加微}  # or a list of triggers (any of them enrolls); each is one of
                                   #   stage_entered: STAGE | tag_added: TAG | event: order_paid |
                                   #   date: {attribute: baby_birth_month, months: [1, 3, 6]}
    max_delay: 6h                  # default 6h: a step later than this past its due time is skipped
    exit:                          # all optional; any one that holds ends the enrollment
      stage_left: true             #   the customer left the stage that enrolled her
      stage_entered: [流失]        #   she entered one of these stages
      tags_any: [已购]             #   she has one of these tags
      unsubscribed: true           #   she unsubscribed (marketing steps are held back regardless)
      when: 'lead_score >= 80'     #   a condition (see bot/sop_expr.py)
    when: 'not ("员工" in tags)'   # optional enrollment condition
    steps:
      - id: d1                     # snake_case, unique in the playbook; `end` is reserved
        day: 1                     # day offset from enrollment (0 = the enrollment day) ...
        at: "10:00"                # ... at this local time (quote it: YAML reads 10:00 as a number)
        when: 'attributes.baby_age_months < 12'   # optional; false -> the step is skipped, recorded
        content:                   # text (variables {customer_name} {guide_name} {store} {brand})
          text: "{customer_name}您好……"  # or reply: SCRIPT_ID from content_library/replies.yaml
          link: {title: ..., url: https://..., desc: ..., picurl: https://...}   # optional
          image: {media_path: media/x.png}        # optional; or pic_url
          miniprogram: {title: ..., appid: ..., page: ..., pic_media_path: media/y.png}  # optional
        route: [kf, mass_task, guide_notify]      # preference order (this is the default)
        wait: 24h                  # optional: wait this long for a reaction after sending ...
        on_reply: d2_replied       # ... then branch: she replied,
        on_click: d2_clicked       #     she clicked a link of this step,
        otherwise: d3              #     neither (or a reaction without its own branch)
      - id: d3
        after: 2h                  # instead of day + at: after the previous step was done
        next: end                  # optional: where to go afterwards (default: the next in the list)

Flow: a step without `wait` goes to `next`, or else the following step in the list; the last step
ends the run, and so does the target `end`. Branches may not loop. A step whose `when` is false
is skipped and goes where no reaction would (`otherwise`, `next`, or the following step).
Durations are `30m`, `2h`, `1d` or combined (`1d12h`). Times are Asia/Shanghai unless the engine
passes another zone.

Timing (`Step.due_at`): `day` + `at` is that time on the enrollment day plus `day` days; a time the
run has already passed when it reaches the step (day 0 at 10:00 for a 15:00 enrollment, or a branch
target whose time went by during a `wait`) is due at once. `after` counts from when the previous
step was done: its send, or, for a step with `wait`, the reaction or the end of the wait; the first
step counts from the enrollment. Quiet hours, caps and unsubscribe are the policy's
(`bot/policy.py`), not the playbook's.

Facts a condition may read (the engine supplies them): `tags` (list of tag names), `stage`,
`channel` (entry channel key), `guide` (userid), `lead_score`, `days_since_added`, `days_in_stage`,
`days_since_message`, `unsubscribed`, and `attributes.<key>` (profile attributes and derived values
such as `attributes.baby_age_months`).

`load_playbooks(directory, content)` raises `errors.ContentErrors` listing every problem as
`file:line: reason`; `PlaybookStore` serves the last good `PlaybookSet` and swaps in valid edits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import re
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from bot import content, errors, sop_expr, yamlfile
from bot.clock import SHANGHAI
from bot.content import ContentSnapshot
from bot.reloading import keep_refreshing

__all__ = [
    "END",
    "EVENTS",
    "FACT_NAMES",
    "ROUTES",
    "STAGES_FILE",
    "Content",
    "DateTrigger",
    "Exit",
    "Playbook",
    "PlaybookSet",
    "PlaybookStore",
    "Step",
    "Trigger",
    "load_playbooks",
    "load_playbooks_from_texts",
    "next_step",
    "parse_duration",
    "read_playbook_files",
]

_LOGGER = logging.getLogger(__name__)
_digest_files = content.digest_files  # load_playbooks' `content` argument shadows the module there

STAGES_FILE = "stages.yaml"
"""The lifecycle stages (bot/lifecycle.py); every other `*.yaml` in sop/ is a playbook."""

END = "end"
"""A branch target that ends the run; no step may be called this."""

ROUTES = ("kf", "mass_task", "guide_notify")
"""kf `send_msg` within the 48 h window, a mass-send task the guide confirms, an app message to the guide."""

EVENTS = ("order_paid",)
"""Events a playbook may be triggered by."""

FACT_NAMES = (
    "tags",
    "stage",
    "channel",
    "guide",
    "lead_score",
    "days_since_added",
    "days_in_stage",
    "days_since_message",
    "unsubscribed",
)
"""Facts a condition may read, besides `attributes.<key>`."""

Reaction = Literal["reply", "click"]
Route = Literal["kf", "mass_task", "guide_notify"]

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?")
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})")
_ATTRIBUTE = re.compile(r"attributes\.[A-Za-z_][A-Za-z0-9_]*")
_YEAR_MONTH = re.compile(r"(\d{4})-(\d{1,2})(?:-(\d{1,2}))?")


# ------------------------------------------------------------------------------------------- values


def parse_duration(text: str) -> dt.timedelta:
    """`30m`, `2h`, `1d`, `1d12h` as a timedelta; raises ValueError otherwise."""
    match = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if not match or not any(match.groups()):
        raise ValueError(f"duration {text!r} must look like 30m, 2h, 1d or 1d12h")
    days, hours, minutes = (int(g or 0) for g in match.groups())
    return dt.timedelta(days=days, hours=hours, minutes=minutes)


def _duration(value: Any) -> dt.timedelta:
    if isinstance(value, dt.timedelta):
        return value
    return parse_duration(value)


def _clock_time(value: Any) -> dt.time:
    if isinstance(value, dt.time):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        # PyYAML reads an unquoted 10:00 as the base-60 number 600.
        raise ValueError('write the time in quotes, like at: "10:00" (unquoted, YAML reads it as a number)')
    match = _CLOCK.fullmatch(value.strip()) if isinstance(value, str) else None
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ValueError(f'at {value!r} must be a time of day like "10:00" (HH:MM, 00:00-23:59)')
    return dt.time(int(match.group(1)), int(match.group(2)))


def _condition(value: Any) -> sop_expr.Condition:
    if isinstance(value, sop_expr.Condition):
        return value
    if not isinstance(value, str):
        raise ValueError("a condition must be text in quotes, e.g. 'lead_score >= 30'")
    condition = sop_expr.compile_condition(value)  # an ExpressionError is a ValueError: reported here
    for name in sorted(condition.names):
        if name not in FACT_NAMES and not _ATTRIBUTE.fullmatch(name):
            known = ", ".join((*FACT_NAMES, "attributes.<key>"))
            raise ValueError(f"unknown fact {name!r} in the condition; known: {known}")
    return condition


def _target(value: str) -> str:
    return value if value == END else content._snake_case(value)


def _step_id(value: str) -> str:
    if value == END:
        raise ValueError(f"{END!r} is reserved (it ends the run); name the step something else")
    return content._snake_case(value)


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, Mapping | str | int) else value


def _at_least_one(what: str) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    def check(items: tuple[Any, ...]) -> tuple[Any, ...]:
        if not items:
            raise ValueError(f"needs at least one {what}")
        return items

    return check


Duration = Annotated[dt.timedelta, BeforeValidator(_duration)]
ClockTime = Annotated[dt.time, PlainValidator(_clock_time)]
Condition = Annotated[sop_expr.Condition, PlainValidator(_condition)]
Target = Annotated[str, AfterValidator(_target)]
StepId = Annotated[str, AfterValidator(_step_id)]
Text = content.Text
Url = content.Url


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", coerce_numbers_to_str=True)


# ------------------------------------------------------------------------------------------ content


class Link(_Model):
    """A link card; the engine sends it through the click-recording redirect."""

    title: Text
    url: Url
    desc: str = ""
    picurl: Url | None = None


class Image(_Model):
    """An image: a file in the content library's media or a public URL."""

    media_path: Text | None = None
    pic_url: Url | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Image:
        if (self.media_path is None) == (self.pic_url is None):
            raise ValueError("an image needs exactly one of media_path or pic_url")
        return self


class Miniprogram(_Model):
    """A mini-program card; its cover is uploaded from the content library's media."""

    title: Text
    appid: Text
    page: Text
    pic_media_path: Text


class Content(_Model):
    """What a step sends: its own `text` or a `reply` script from replies.yaml, plus attachments."""

    text: content.Template | None = None
    reply: content.Id | None = None
    link: Link | None = None
    image: Image | None = None
    miniprogram: Miniprogram | None = None

    @model_validator(mode="after")
    def _text_or_reply(self) -> Content:
        if (self.text is None) == (self.reply is None):
            raise ValueError("content needs exactly one of text or reply (a script id from replies.yaml)")
        return self

    def resolve_text(self, library: ContentSnapshot | None) -> str:
        """The template to send: `text`, or the referenced script's text (KeyError if it is gone)."""
        if self.text is not None:
            return self.text
        scripts = library.replies.by_id if library is not None else {}
        return scripts[self.reply].text  # type: ignore[index]

    def attachments(self) -> tuple[content.Attachment, ...]:
        """The attachments in the content library's shapes (image, link, mini-program), in that order."""
        out: list[Any] = []
        if self.image is not None:
            out.append(content.ImageAttachment(type="image", **self.image.model_dump()))
        if self.link is not None:
            out.append(content.LinkAttachment(type="link", **self.link.model_dump()))
        if self.miniprogram is not None:
            out.append(content.MiniprogramAttachment(type="miniprogram", **self.miniprogram.model_dump()))
        return tuple(out)


# --------------------------------------------------------------------------------------------- steps


class Step(_Model):
    """One message of a playbook: when it is due, whether it applies, what it sends, where it leads."""

    id: StepId
    day: int | None = Field(None, ge=0, le=3660)
    at: ClockTime | None = None
    after: Duration | None = None
    when: Condition | None = None
    content: Content
    route: tuple[Route, ...] = ROUTES
    wait: Duration | None = None
    on_reply: Target | None = None
    on_click: Target | None = None
    otherwise: Target | None = None
    next: Target | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Step:
        if self.after is not None and (self.day is not None or self.at is not None):
            raise ValueError("a step is timed by day + at or by after, not both")
        if self.after is None and self.day is None and self.at is None:
            raise ValueError('a step needs day + at (e.g. day: 1, at: "10:00") or after (e.g. after: 2h)')
        if self.day is not None and self.at is None:
            raise ValueError('day needs at, the local time to send (e.g. at: "10:00")')
        if self.at is not None and self.day is None:
            raise ValueError("at needs day, the day offset from enrollment (0 = the enrollment day)")
        branches = [k for k in ("on_reply", "on_click", "otherwise") if getattr(self, k) is not None]
        if branches and self.wait is None:
            raise ValueError(f"{branches[0]} needs wait (how long to wait for a reaction)")
        if self.wait is not None and not branches:
            raise ValueError("wait needs on_reply, on_click or otherwise to branch to")
        if self.wait is not None and self.wait <= dt.timedelta(0):
            raise ValueError("wait must be longer than 0m")
        if self.otherwise is not None and self.next is not None:
            raise ValueError("otherwise and next both say where to go without a reaction: keep one")
        if not self.route:
            raise ValueError(f"route needs at least one of {', '.join(ROUTES)}")
        if len(set(self.route)) != len(self.route):
            raise ValueError("route lists a channel twice")
        return self

    def due_at(
        self, enrolled_at: dt.datetime, previous_sent_at: dt.datetime | None = None, tz: dt.tzinfo = SHANGHAI
    ) -> dt.datetime:
        """When the step is due, aware in `tz`.

        `previous_sent_at` is when the previous step was done (its send, or for a step with `wait`
        the reaction or the end of the wait); None for the first step of a run.
        """
        if enrolled_at.tzinfo is None or (previous_sent_at is not None and previous_sent_at.tzinfo is None):
            raise ValueError("due_at needs timezone-aware datetimes")
        reached = previous_sent_at if previous_sent_at is not None else enrolled_at
        if self.after is not None:
            return (reached + self.after).astimezone(tz)
        assert self.day is not None and self.at is not None
        local = enrolled_at.astimezone(tz)
        due = dt.datetime.combine(local.date() + dt.timedelta(days=self.day), self.at, tzinfo=tz)
        # A time the run had already passed when it got here is due now, not "late".
        return max(due, reached.astimezone(tz))


# ---------------------------------------------------------------------------------- triggers, exits


class DateTrigger(_Model):
    """Enroll when a date attribute (YYYY-MM or YYYY-MM-DD) is `months` months old."""

    attribute: content.Id
    months: Annotated[
        tuple[Annotated[int, Field(ge=0, le=240)], ...],
        BeforeValidator(_one_or_many),
        AfterValidator(_at_least_one("month")),
    ]

    @model_validator(mode="after")
    def _distinct(self) -> DateTrigger:
        if len(set(self.months)) != len(self.months):
            raise ValueError("months lists a month twice")
        return self

    def fire_dates(self, value: str) -> tuple[tuple[int, dt.date], ...]:
        """(months, date) for each of `months`; () when `value` is not a date.

        A YYYY-MM value fires on the first day of the month it turns N months old (the birth day is
        unknown); a YYYY-MM-DD value on the same day of that month, or the month's last day.
        """
        match = _YEAR_MONTH.fullmatch(value.strip()) if isinstance(value, str) else None
        if not match:
            return ()
        year, month = int(match.group(1)), int(match.group(2))
        day = int(match.group(3) or 1)
        if not 1 <= month <= 12:
            return ()
        out = []
        for months in sorted(self.months):
            index = year * 12 + month - 1 + months
            y, m = divmod(index, 12)
            last = (dt.date(y + (m + 1) // 12, (m + 1) % 12 + 1, 1) - dt.timedelta(days=1)).day
            out.append((months, dt.date(y, m + 1, min(day, last))))
        return tuple(out)


class Trigger(_Model):
    """What enrolls a customer: exactly one of stage_entered, tag_added, event or date."""

    stage_entered: Text | None = None
    tag_added: Text | None = None
    event: Literal["order_paid"] | None = None
    date: DateTrigger | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Trigger:
        given = [k for k in ("stage_entered", "tag_added", "event", "date") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "a trigger is exactly one of stage_entered, tag_added, event or date"
                + ("; write a list for several" if given else "")
            )
        return self

    @property
    def kind(self) -> str:
        """`stage_entered`, `tag_added`, `event` or `date`."""
        return next(
            k for k in ("stage_entered", "tag_added", "event", "date") if getattr(self, k) is not None
        )


class Exit(_Model):
    """Conditions that end an enrollment; any one is enough."""

    stage_left: bool = False
    stage_entered: tuple[Text, ...] = ()
    tags_any: tuple[Text, ...] = ()
    unsubscribed: bool = False
    when: Condition | None = None

    def reason(self, facts: Mapping[str, Any], enrolled_stage: str | None = None) -> str | None:
        """Why the enrollment ends given `facts`, or None while it goes on."""
        stage = facts.get("stage")
        if self.unsubscribed and facts.get("unsubscribed"):
            return "unsubscribed"
        if self.stage_left and enrolled_stage is not None and stage != enrolled_stage:
            return f"left stage {enrolled_stage}"
        if stage in self.stage_entered:
            return f"entered stage {stage}"
        tags = facts.get("tags") or ()
        for tag in self.tags_any:
            if tag in tags:
                return f"tag {tag}"
        if self.when is not None and self.when.evaluate(facts):
            return f"exit condition {self.when.text}"
        return None


# ------------------------------------------------------------------------------------------ playbook


class Playbook(_Model):
    """One SOP: who is enrolled, when to leave, and the steps."""

    id: content.Id
    name: Text
    enabled: bool = True
    marketing: bool = True
    trigger: Annotated[
        tuple[Trigger, ...], BeforeValidator(_one_or_many), AfterValidator(_at_least_one("trigger"))
    ]
    max_delay: Duration = dt.timedelta(hours=6)
    exit: Exit = Exit()
    when: Condition | None = None
    steps: Annotated[tuple[Step, ...], AfterValidator(_at_least_one("step"))]
    _index: dict[str, int] = PrivateAttr(default_factory=dict)

    def model_post_init(self, _context: Any) -> None:
        """Index steps by id (the first wins; duplicates are a validation error)."""
        for position, step in enumerate(self.steps):
            self._index.setdefault(step.id, position)
        # A plain instance attribute as well: the runner asks for steps thousands of times a
        # second, and pydantic serves private attributes through a slow __getattr__.
        object.__setattr__(self, "_by_id", dict(self._index))

    def _steps_by_id(self) -> dict[str, int]:
        return self.__dict__["_by_id"]

    @property
    def first_step(self) -> Step:
        """The step a run starts with."""
        return self.steps[0]

    def step(self, step_id: str) -> Step:
        """The step called `step_id`; KeyError when there is none (e.g. removed by an edit)."""
        return self.steps[self._steps_by_id()[step_id]]

    def has_step(self, step_id: str) -> bool:
        """True when the playbook has a step called `step_id`."""
        return step_id in self._steps_by_id()

    def is_late(self, due: dt.datetime, now: dt.datetime) -> bool:
        """True when `now` is more than max_delay past `due`: skip and record, do not send."""
        return now - due > self.max_delay

    def triggered_by(self, kind: str, value: str) -> bool:
        """True when a trigger of `kind` (stage_entered, tag_added, event) names `value`."""
        return any(t.kind == kind and getattr(t, kind) == value for t in self.trigger)


def next_step(playbook: Playbook, step_id: str, reaction: Reaction | None) -> Step | None:
    """The step after `step_id` given the customer's reaction (None: none in time); None ends the run.

    A reaction without its own branch goes where no reaction would (`otherwise`). Without `wait`
    the reaction is ignored: `next`, or else the following step in the list. After a step skipped
    by its `when`, call it with None.
    """
    step = playbook.step(step_id)
    target: str | None = None
    if step.wait is not None:
        if reaction == "reply":
            target = step.on_reply
        elif reaction == "click":
            target = step.on_click
        target = target or step.otherwise
    target = target or step.next
    if target is None:
        position = playbook.steps.index(step) + 1
        return playbook.steps[position] if position < len(playbook.steps) else None
    return None if target == END else playbook.step(target)


# ------------------------------------------------------------------------------------------- the set


@dataclasses.dataclass(frozen=True, eq=False)
class PlaybookSet:
    """Every playbook of one valid sop/ version; never changes (a reload builds a new one)."""

    playbooks: tuple[Playbook, ...]
    sources: Mapping[str, str]
    """Playbook id -> file name."""
    digest: str
    files: Mapping[str, str]

    def get(self, playbook_id: str) -> Playbook | None:
        """The playbook with `playbook_id`, enabled or not."""
        return next((p for p in self.playbooks if p.id == playbook_id), None)

    def enabled(self) -> tuple[Playbook, ...]:
        """Enabled playbooks in file order."""
        return tuple(p for p in self.playbooks if p.enabled)

    def triggered_by(self, kind: str, value: str) -> tuple[Playbook, ...]:
        """Enabled playbooks a stage_entered / tag_added / event `value` enrolls into."""
        return tuple(p for p in self.enabled() if p.triggered_by(kind, value))

    def dated(self) -> tuple[tuple[Playbook, DateTrigger], ...]:
        """Enabled playbooks with their date triggers, for the daily date scan."""
        return tuple((p, t.date) for p in self.enabled() for t in p.trigger if t.date is not None)


def read_playbook_files(directory: str | Path) -> dict[str, str]:
    """The playbook files (`*.yaml` but stages.yaml, top level of `directory`) by name."""
    files = content.read_library_files(directory)
    files.pop(STAGES_FILE, None)
    return files


def load_playbooks(
    directory: str | Path,
    content: ContentSnapshot | None = None,
    stages: Collection[str] | None = None,
) -> PlaybookSet:
    """Load and validate every playbook in `directory`; raises ContentErrors listing every problem.

    With `content`, `reply:` ids must be scripts in its replies.yaml; with `stages`, stage
    names in triggers and exits must be among them.
    """
    if not Path(directory).is_dir():
        raise errors.ContentErrors(
            [errors.ContentError(str(directory), None, "sop directory does not exist")]
        )
    return load_playbooks_from_texts(read_playbook_files(directory), content, stages)


def load_playbooks_from_texts(
    files: Mapping[str, str],
    content: ContentSnapshot | None = None,
    stages: Collection[str] | None = None,
) -> PlaybookSet:
    """Validate playbooks given as {file name: text}; raises ContentErrors listing every problem."""
    problems: list[errors.ContentError] = []
    scripts = {s.id for s in content.replies.scripts()} if content is not None else None
    playbooks: list[Playbook] = []
    sources: dict[str, str] = {}
    first_id: dict[str, str] = {}
    for name in sorted(files):
        try:
            loaded = yamlfile.load_text(files[name], name)
        except errors.ContentError as exc:
            problems.append(exc)
            continue
        problems.extend(loaded.problems)
        if loaded.data is None:
            problems.append(
                errors.ContentError(name, 1, "empty file: a playbook needs id, name, trigger, steps")
            )
            continue
        try:
            playbook: Playbook | None = Playbook.model_validate(loaded.data)
        except ValidationError as exc:
            playbook = None
            problems.extend(yamlfile.problems_from(exc, loaded))
        # Cross-checks read the raw data, so they report even when a neighbouring field is invalid.
        data = loaded.data if isinstance(loaded.data, dict) else {}
        playbook_id = data.get("id")
        if isinstance(playbook_id, str):
            if playbook_id in first_id:
                other = first_id[playbook_id]
                problems.append(
                    errors.ContentError(
                        name,
                        loaded.line_of(("id",)),
                        f"duplicate playbook id {playbook_id!r} (first in {other})",
                    )
                )
            else:
                first_id[playbook_id] = f"{name}:{loaded.line_of(('id',))}"
        _check_steps(loaded, problems)
        _check_references(loaded, scripts, stages, problems)
        if playbook is not None:
            playbooks.append(playbook)
            sources.setdefault(playbook.id, name)
    if problems:
        raise errors.ContentErrors(sorted(problems, key=lambda e: (e.file, e.line or 0)))
    return PlaybookSet(
        playbooks=tuple(playbooks),
        sources=MappingProxyType(sources),
        digest=_digest_files(files),
        files=MappingProxyType(dict(files)),
    )


def _steps(loaded: yamlfile.Loaded) -> list[tuple[int, dict[str, Any]]]:
    data = loaded.data
    steps = data.get("steps") if isinstance(data, dict) else None
    if not isinstance(steps, list):
        return []
    return [(index, step) for index, step in enumerate(steps) if isinstance(step, dict)]


_BRANCHES = ("on_reply", "on_click", "otherwise", "next")


def _check_steps(loaded: yamlfile.Loaded, problems: list[errors.ContentError]) -> None:
    steps = _steps(loaded)
    first_line: dict[str, int | None] = {}
    position: dict[str, int] = {}
    for index, step in steps:
        step_id = step.get("id")
        if not isinstance(step_id, str):
            continue
        line = loaded.line_of(("steps", index, "id"))
        if step_id in first_line:
            problems.append(
                errors.ContentError(
                    loaded.name, line, f"duplicate step id {step_id!r} (first on line {first_line[step_id]})"
                )
            )
        else:
            first_line[step_id] = line
            position[step_id] = index
    order = [step.get("id") for _, step in steps]
    edges: dict[str, list[tuple[str, str]]] = {}
    for index, step in steps:
        step_id = step.get("id")
        for key in _BRANCHES:
            target = step.get(key)
            if isinstance(target, str) and target != END and target not in first_line:
                problems.append(
                    errors.ContentError(
                        loaded.name,
                        loaded.line_of(("steps", index, key)),
                        f"steps[{index}].{key}: {target!r} is not a step id in this playbook (or {END})",
                    )
                )
        if isinstance(step_id, str) and position.get(step_id) == index:
            edges[step_id] = _successors(step, index, order)
    if len(position) == len([s for _, s in steps if isinstance(s.get("id"), str)]):
        _check_loops(loaded, edges, position, problems)  # with duplicate ids the flow is ambiguous


def _successors(step: dict[str, Any], index: int, order: list[Any]) -> list[tuple[str, str]]:
    """(key, target) pairs a run may take from `step`, mirroring next_step()."""
    out = []
    for key in ("on_reply", "on_click"):
        if isinstance(step.get(key), str):
            out.append((key, step[key]))
    fallback = next((k for k in ("otherwise", "next") if isinstance(step.get(k), str)), None)
    if fallback is not None:
        out.append((fallback, step[fallback]))
    elif index + 1 < len(order) and isinstance(order[index + 1], str):
        out.append(("id", order[index + 1]))  # falls through to the next step in the list
    return out


def _check_loops(
    loaded: yamlfile.Loaded,
    edges: dict[str, list[tuple[str, str]]],
    position: dict[str, int],
    problems: list[errors.ContentError],
) -> None:
    # A loop would send the same steps again and again (and break the engine's once-per-step key).
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    reported: set[tuple[str, str]] = set()

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for key, target in edges.get(node, ()):
            if target not in edges:
                continue
            if state.get(target) == 1 and (node, target) not in reported:
                reported.add((node, target))
                walked = [*path, node]
                loop = " -> ".join([*walked[walked.index(target) :], target])
                where = "" if key == "id" else f".{key}"
                problems.append(
                    errors.ContentError(
                        loaded.name,
                        loaded.line_of(("steps", position[node], key)),
                        f"steps[{position[node]}]{where}: the steps loop ({loop}); every path must end",
                    )
                )
            elif target not in state:
                visit(target, [*path, node])
        state[node] = 2

    for node in edges:
        if node not in state:
            visit(node, [])


def _check_references(
    loaded: yamlfile.Loaded,
    scripts: set[str] | None,
    stages: Collection[str] | None,
    problems: list[errors.ContentError],
) -> None:
    data = loaded.data if isinstance(loaded.data, dict) else {}
    triggers = data.get("trigger")
    triggers = [triggers] if isinstance(triggers, dict) else triggers if isinstance(triggers, list) else []
    stage_triggered = any(isinstance(t, dict) and "stage_entered" in t for t in triggers)
    exit_ = data.get("exit")
    if isinstance(exit_, dict) and exit_.get("stage_left") is True and not stage_triggered:
        problems.append(
            errors.ContentError(
                loaded.name,
                loaded.line_of(("exit", "stage_left")),
                "exit.stage_left needs a stage_entered trigger (which stage would she leave?)",
            )
        )
    if stages is not None:
        named: list[tuple[tuple[Any, ...], Any]] = []
        for index, trigger in enumerate(triggers):
            if isinstance(trigger, dict) and "stage_entered" in trigger:
                path = (
                    ("trigger", "stage_entered")
                    if isinstance(data.get("trigger"), dict)
                    else ("trigger", index, "stage_entered")
                )
                named.append((path, trigger["stage_entered"]))
        if isinstance(exit_, dict) and isinstance(exit_.get("stage_entered"), list):
            named += [(("exit", "stage_entered", i), s) for i, s in enumerate(exit_["stage_entered"])]
        for path, stage in named:
            if isinstance(stage, str) and stage not in stages:
                problems.append(
                    errors.ContentError(
                        loaded.name,
                        loaded.line_of(path),
                        f"stage {stage!r} is not in {STAGES_FILE}; known: {', '.join(stages)}",
                    )
                )
    if scripts is None:
        return
    for index, step in _steps(loaded):
        body = step.get("content")
        ref = body.get("reply") if isinstance(body, dict) else None
        if isinstance(ref, str) and ref not in scripts:
            problems.append(
                errors.ContentError(
                    loaded.name,
                    loaded.line_of(("steps", index, "content", "reply")),
                    f"steps[{index}].content.reply: {ref!r} is not a script id in replies.yaml",
                )
            )


# --------------------------------------------------------------------------------------------- store


class PlaybookStore:
    """Serves the last good PlaybookSet from `directory` and swaps in valid changes."""

    def __init__(
        self,
        directory: str | Path,
        *,
        content_snapshot: Callable[[], ContentSnapshot | None] | None = None,
        stages: Callable[[], Collection[str] | None] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self._content = content_snapshot or (lambda: None)
        self._stages = stages or (lambda: None)
        self._current: PlaybookSet | None = None
        self._current_key = ""
        self._rejected: set[str] = set()
        self._refreshing = asyncio.Lock()

    @property
    def current(self) -> PlaybookSet:
        """The last good set."""
        if self._current is None:
            raise RuntimeError("PlaybookStore.start() has not run")
        return self._current

    async def start(self) -> PlaybookSet:
        """Load sop/; raises ContentErrors so the service refuses to run invalid playbooks."""
        key, files, snapshot, stages = await self._read()
        self._current = await asyncio.to_thread(load_playbooks_from_texts, files, snapshot, stages)
        self._current_key = key
        _LOGGER.info(
            "playbooks loaded: digest=%s playbooks=%d",
            self._current.digest[:12],
            len(self._current.playbooks),
        )
        return self._current

    async def refresh(self) -> bool:
        """Swap in a changed, valid sop/; True when the served set changed."""
        async with self._refreshing:
            current = self.current
            key, files, snapshot, stages = await self._read()
            if key == self._current_key or key in self._rejected:
                return False
            try:
                new = await asyncio.to_thread(load_playbooks_from_texts, files, snapshot, stages)
            except errors.ContentErrors as exc:
                self._rejected.add(key)
                _LOGGER.warning(
                    "playbooks %s rejected, still serving %s: %d error(s)\n%s",
                    content.digest_files(files)[:12],
                    current.digest[:12],
                    len(exc.errors),
                    "\n".join(str(e) for e in exc.errors),
                )
                return False
            self._current, self._current_key = new, key
            self._rejected.clear()  # a version rejected earlier may come back; warn about it again then
            _LOGGER.info(
                "playbooks reloaded: digest=%s (was %s) playbooks=%d",
                new.digest[:12],
                current.digest[:12],
                len(new.playbooks),
            )
            return True

    async def run(self, stopping: asyncio.Event, interval_seconds: float) -> None:
        """Call refresh() every `interval_seconds` until `stopping` is set."""
        await keep_refreshing(
            stopping, interval_seconds, self.refresh, "playbook", lambda: self.current.digest[:12]
        )

    async def _read(
        self,
    ) -> tuple[str, dict[str, str], ContentSnapshot | None, Collection[str] | None]:
        if not await asyncio.to_thread(self.directory.is_dir):
            raise errors.ContentErrors(
                [errors.ContentError(str(self.directory), None, "sop directory does not exist")]
            )
        files = await asyncio.to_thread(read_playbook_files, self.directory)
        snapshot, stages = self._content(), self._stages()
        # A content or stages change can break a playbook's references, so it is part of the version.
        key = "|".join(
            (
                content.digest_files(files),
                snapshot.digest if snapshot is not None else "-",
                ",".join(stages) if stages is not None else "-",
            )
        )
        return key, files, snapshot, stages
