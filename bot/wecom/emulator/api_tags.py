"""Corp tags: get_corp_tag_list, add/edit/del_corp_tag, mark_tag (p/92117, p/96320, p/92697 §5.2).

API mutations never produce change_external_tag / edit_external_contact callbacks (p/96361).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.wecom.emulator.api_contact import CONTACT_APPS, follow_of
from bot.wecom.emulator.common import (
    INVALID_PARAM,
    PARAM_EMPTY,
    ApiCall,
    ApiError,
    ApiSpec,
    int_field,
    ok,
    opt_str,
    str_list,
)
from bot.wecom.emulator.world import Tag, TagGroup

if TYPE_CHECKING:
    from bot.wecom.emulator.state import EmulatorState

CORP_TAG_CAP = 3000  # per corp, incl. rule-group tags -> 40126
TAGS_PER_CUSTOMER_CAP = 3000  # per member per customer (p/92697)
NAME_MAX = 30


def _tag_json(tag: Tag, with_deleted: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": tag.id,
        "name": tag.name,
        "create_time": tag.create_time,
        "order": tag.order,
    }
    if with_deleted:
        data["deleted"] = tag.deleted
    return data


def _group_json(group: TagGroup, tags: list[Tag], with_deleted: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "group_id": group.group_id,
        "group_name": group.group_name,
        "create_time": group.create_time,
        "order": group.order,
        "tag": [_tag_json(t, with_deleted) for t in sorted(tags, key=lambda t: -t.order)],
    }
    if with_deleted:
        data["deleted"] = group.deleted
    return data


def get_corp_tag_list(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """Both filters empty -> all live tags; group_id given -> it wins and tag_id is ignored."""
    groups = state.world.tag_groups
    tag_ids, group_ids = str_list(call.body, "tag_id"), str_list(call.body, "group_id")
    result: list[dict[str, Any]] = []
    if group_ids:
        for gid in group_ids:
            if gid in groups:
                result.append(_group_json(groups[gid], groups[gid].tags, with_deleted=True))
    elif tag_ids:
        wanted = set(tag_ids)
        for group in groups.values():
            hits = [t for t in group.tags if t.id in wanted]
            if hits:
                result.append(_group_json(group, hits, with_deleted=True))
    else:
        for group in groups.values():
            if not group.deleted:
                result.append(
                    _group_json(group, [t for t in group.tags if not t.deleted], with_deleted=False)
                )
    result.sort(key=lambda g: -g["order"])
    return ok(tag_group=result)


def _check_name(name: Any, what: str) -> str:
    if not name or not isinstance(name, str):
        raise ApiError(PARAM_EMPTY, f"{what} is required")
    if len(name) > NAME_MAX:
        raise ApiError(INVALID_PARAM, f"{what} longer than {NAME_MAX} characters")
    return name


def add_corp_tag(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """Add tags into group_id, into an existing group_name, or into a new group."""
    world, body = state.world, call.body
    now = int(state.clock.timestamp())
    new_tags = body.get("tag")
    if not new_tags or not isinstance(new_tags, list) or not all(isinstance(t, dict) for t in new_tags):
        raise ApiError(PARAM_EMPTY, "tag is required")
    names = [_check_name(t.get("name"), "tag.name") for t in new_tags]
    group: TagGroup | None = None
    group_id = body.get("group_id")
    if group_id:
        group = world.tag_groups.get(group_id)
        if group is None or group.deleted:
            raise ApiError(40068, str(group_id))
    else:
        group_name = _check_name(body.get("group_name"), "group_name")
        group = next(
            (g for g in world.tag_groups.values() if g.group_name == group_name and not g.deleted), None
        )
        if group is None:
            group = TagGroup(
                group_id=state.ids.tag_id(),
                group_name=group_name,
                create_time=now,
                order=int_field(body, "order", 0),
            )
    existing = {t.name for t in group.tags if not t.deleted}
    if len(set(names)) != len(names) or existing & set(names):
        raise ApiError(40071)
    if world.live_tag_count() + len(names) > CORP_TAG_CAP:
        raise ApiError(40126)
    world.tag_groups.setdefault(group.group_id, group)
    created = [
        Tag(
            id=state.ids.tag_id(),
            name=name,
            group_id=group.group_id,
            create_time=now,
            order=int_field(spec, "order", 0),
        )
        for name, spec in zip(names, new_tags, strict=True)
    ]
    group.tags.extend(created)
    return ok(tag_group=_group_json(group, created, with_deleted=False))


def edit_corp_tag(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """Rename / reorder one tag or group by id."""
    world, body = state.world, call.body
    target_id = body.get("id")
    if not target_id or not isinstance(target_id, str):
        raise ApiError(PARAM_EMPTY, "id is required")
    name = opt_str(body, "name", max_chars=NAME_MAX)
    group = world.tag_groups.get(target_id)
    if group is not None and not group.deleted:
        if name is not None:
            if any(
                g.group_name == name and g is not group and not g.deleted for g in world.tag_groups.values()
            ):
                raise ApiError(40071)
            group.group_name = name
        if "order" in body:
            group.order = int_field(body, "order", group.order)
        return ok()
    tag = world.tag(target_id)
    if tag is None or tag.deleted:
        raise ApiError(40068, target_id)
    if name is not None:
        siblings = world.tag_groups[tag.group_id].tags
        if any(t.name == name and t is not tag and not t.deleted for t in siblings):
            raise ApiError(40071)
        tag.name = name
    if "order" in body:
        tag.order = int_field(body, "order", tag.order)
    return ok()


def del_corp_tag(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """Delete tags and/or groups; unknown ids -> 40068 and nothing is deleted."""
    world = state.world
    tag_ids, group_ids = str_list(call.body, "tag_id"), str_list(call.body, "group_id")
    if not tag_ids and not group_ids:
        raise ApiError(PARAM_EMPTY, "tag_id and group_id are both empty")
    tags = [world.tag(i) for i in tag_ids]
    groups = [world.tag_groups.get(i) for i in group_ids]
    for ident, item in [*zip(tag_ids, tags, strict=True), *zip(group_ids, groups, strict=True)]:
        if item is None or item.deleted:
            raise ApiError(40068, ident)
    for tag in tags:
        assert tag is not None
        tag.deleted = True
        owner = world.tag_groups[tag.group_id]
        # Deleting the last tag of a group removes the group (UNCONFIRMED, option).
        if state.options.delete_empty_tag_group and all(t.deleted for t in owner.tags):
            owner.deleted = True
    for group in groups:
        assert group is not None
        group.deleted = True
        for tag in group.tags:
            tag.deleted = True
    return ok()


def mark_tag(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """Add/remove corp tags on one member's customer (p/92697)."""
    world, body = state.world, call.body
    follow = follow_of(world, body.get("userid"), body.get("external_userid"))
    add, remove = str_list(body, "add_tag"), str_list(body, "remove_tag")
    if not add and not remove:
        raise ApiError(PARAM_EMPTY, "add_tag and remove_tag are both empty")
    for tag_id in add + remove:
        tag = world.tag(tag_id)
        if tag is None or tag.deleted:
            raise ApiError(40068, tag_id)
    tags = [t for t in follow.tag_ids if t not in remove]
    tags += [t for t in dict.fromkeys(add) if t not in tags]
    if len(tags) > TAGS_PER_CUSTOMER_CAP:
        # The doc states the cap but no errcode (UNCONFIRMED).
        raise ApiError(INVALID_PARAM, "more than 3000 tags on one customer")
    follow.tag_ids = tags
    return ok()


ROUTES = [
    ApiSpec("/cgi-bin/externalcontact/get_corp_tag_list", "POST", get_corp_tag_list, CONTACT_APPS),
    ApiSpec("/cgi-bin/externalcontact/add_corp_tag", "POST", add_corp_tag, CONTACT_APPS),
    ApiSpec("/cgi-bin/externalcontact/edit_corp_tag", "POST", edit_corp_tag, CONTACT_APPS),
    ApiSpec("/cgi-bin/externalcontact/del_corp_tag", "POST", del_corp_tag, CONTACT_APPS),
    ApiSpec("/cgi-bin/externalcontact/mark_tag", "POST", mark_tag, CONTACT_APPS),
]
