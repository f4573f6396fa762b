//! The generic engine: process language, pure core, calendars, scenario runner, store and scheduler.
