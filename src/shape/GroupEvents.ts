/**
 * The groups/events format of the seed: `<groups><group …><event …/></group></groups>`.
 *
 * @since 0.1.0
 */
import { attribute, child, type DocumentShape, parentKey, type RecordShape, ValueType } from "./Shape.js"

/**
 * `<event>` inside a `<group>`: staged in `stg_event`, final in `event`; its `group_id` is
 * the enclosing group's id.
 *
 * @since 0.1.0
 * @category shapes
 */
export const Event: RecordShape = {
  element: "event",
  table: "event",
  stagingTable: "stg_event",
  key: "event_id",
  columns: [
    attribute("id", "event_id", ValueType.id, true),
    parentKey("group_id"),
    attribute("type", "type", ValueType.nonEmptyText, true),
    attribute("occurred_at", "occurred_at", ValueType.timestamptz, true),
    attribute("severity", "severity", ValueType.smallint(0, 7)),
    child("source", "source", ValueType.text),
    child("payload", "payload", ValueType.text)
  ],
  children: []
}

/**
 * `<group>` with its `<event>` children: staged in `stg_group_event`, final in `group_event`.
 *
 * @since 0.1.0
 * @category shapes
 */
export const Group: RecordShape = {
  element: "group",
  table: "group_event",
  stagingTable: "stg_group_event",
  key: "group_id",
  columns: [
    attribute("id", "group_id", ValueType.id, true),
    attribute("code", "code", ValueType.nonEmptyText, true),
    child("name", "name", ValueType.text, true),
    child("description", "description", ValueType.text),
    attribute("created_at", "created_at", ValueType.timestamptz, true)
  ],
  children: [Event]
}

/**
 * The whole document: a `<groups>` root holding `<group>` records.
 *
 * @since 0.1.0
 * @category shapes
 */
export const GroupsDocument: DocumentShape = { root: "groups", record: Group }
