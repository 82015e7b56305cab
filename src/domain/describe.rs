//! The human view of an event: what the activity log shows and Kafka carries.

use super::id::Id;

use super::event::Event;

/// One activity line. `None` from [`describe`] means the event is not activity
/// (user and auth events): never logged per group, never published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Activity {
    pub(crate) event_type: &'static str,
    pub(crate) entity: &'static str,
    pub(crate) entity_id: Id,
    pub(crate) group_id: Id,
    pub(crate) group_name: String,
    pub(crate) task_id: Option<Id>,
    pub(crate) task_name: Option<String>,
    pub(crate) changes: String,
}

fn listed(changed: &[String]) -> String {
    if changed.is_empty() {
        String::new()
    } else {
        format!(" ({})", changed.join(", "))
    }
}

pub(crate) fn describe(event: &Event) -> Option<Activity> {
    let a = match event {
        Event::UserCreated(_) => return None,
        Event::GroupCreated(e) => Activity {
            event_type: "created",
            entity: "Group",
            entity_id: e.group_id.clone(),
            group_id: e.group_id.clone(),
            group_name: e.name.clone(),
            task_id: None,
            task_name: None,
            changes: format!("Group '{}' was created", e.name),
        },
        Event::GroupUpdated(e) => Activity {
            event_type: "updated",
            entity: "Group",
            entity_id: e.group_id.clone(),
            group_id: e.group_id.clone(),
            group_name: e.name.clone(),
            task_id: None,
            task_name: None,
            changes: format!("Group '{}' was updated{}", e.name, listed(&e.changed)),
        },
        Event::GroupDeleted(e) => Activity {
            event_type: "deleted",
            entity: "Group",
            entity_id: e.group_id.clone(),
            group_id: e.group_id.clone(),
            group_name: e.name.clone(),
            task_id: None,
            task_name: None,
            changes: format!("Group '{}' was deleted", e.name),
        },
        Event::TaskCreated(e) => Activity {
            event_type: "created",
            entity: "Task",
            entity_id: e.task_id.clone(),
            group_id: e.group_id.clone(),
            group_name: e.group_name.clone(),
            task_id: Some(e.task_id.clone()),
            task_name: Some(e.name.clone()),
            changes: format!("Task '{}' was created", e.name),
        },
        Event::TaskUpdated(e) => Activity {
            event_type: "updated",
            entity: "Task",
            entity_id: e.task_id.clone(),
            group_id: e.group_id.clone(),
            group_name: e.group_name.clone(),
            task_id: Some(e.task_id.clone()),
            task_name: Some(e.name.clone()),
            changes: format!("Task '{}' was updated{}", e.name, listed(&e.changed)),
        },
        Event::TaskStatusChanged(e) => Activity {
            event_type: "status_changed",
            entity: "Task",
            entity_id: e.task_id.clone(),
            group_id: e.group_id.clone(),
            group_name: e.group_name.clone(),
            task_id: Some(e.task_id.clone()),
            task_name: Some(e.task_name.clone()),
            changes: format!(
                "Task '{}' status changed from '{}' to '{}'",
                e.task_name,
                e.from.as_str(),
                e.to.as_str()
            ),
        },
        Event::TaskDeleted(e) => Activity {
            event_type: "deleted",
            entity: "Task",
            entity_id: e.task_id.clone(),
            group_id: e.group_id.clone(),
            group_name: e.group_name.clone(),
            task_id: Some(e.task_id.clone()),
            task_name: Some(e.name.clone()),
            changes: format!("Task '{}' was deleted", e.name),
        },
        Event::CommentAdded(e) => Activity {
            event_type: "commented",
            entity: "Task",
            entity_id: e.task_id.clone(),
            group_id: e.group_id.clone(),
            group_name: e.group_name.clone(),
            task_id: Some(e.task_id.clone()),
            task_name: Some(e.task_name.clone()),
            changes: format!("Comment added to task '{}'", e.task_name),
        },
    };
    Some(a)
}

/// Where an event's activity is indexed, borrowed from the event: the group (id,
/// name) and, for task events, the task (id, name). `None` for non-activity. What
/// [`describe`] says without building the sentence — the memory image needs only
/// this, once per event on every replay.
pub(crate) struct ActivityKeys<'a> {
    pub(crate) group_id: &'a Id,
    pub(crate) group_name: &'a str,
    pub(crate) task: Option<(&'a Id, &'a str)>,
}

pub(crate) fn activity_keys(event: &Event) -> Option<ActivityKeys<'_>> {
    let k = match event {
        Event::UserCreated(_) => return None,
        Event::GroupCreated(e) => (&e.group_id, e.name.as_str(), None),
        Event::GroupUpdated(e) => (&e.group_id, e.name.as_str(), None),
        Event::GroupDeleted(e) => (&e.group_id, e.name.as_str(), None),
        Event::TaskCreated(e) => (
            &e.group_id,
            e.group_name.as_str(),
            Some((&e.task_id, e.name.as_str())),
        ),
        Event::TaskUpdated(e) => (
            &e.group_id,
            e.group_name.as_str(),
            Some((&e.task_id, e.name.as_str())),
        ),
        Event::TaskStatusChanged(e) => (
            &e.group_id,
            e.group_name.as_str(),
            Some((&e.task_id, e.task_name.as_str())),
        ),
        Event::TaskDeleted(e) => (
            &e.group_id,
            e.group_name.as_str(),
            Some((&e.task_id, e.name.as_str())),
        ),
        Event::CommentAdded(e) => (
            &e.group_id,
            e.group_name.as_str(),
            Some((&e.task_id, e.task_name.as_str())),
        ),
    };
    Some(ActivityKeys {
        group_id: k.0,
        group_name: k.1,
        task: k.2,
    })
}
