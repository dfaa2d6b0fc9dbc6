//! # chatstore-contract
//!
//! The contract suite of chatstore: every rule a backend must keep, written once as a plain
//! `async fn(&Store) -> Result<()>` with a one-line `///` that states it, grouped by aggregate
//! ([`users`], [`chats`], [`tags`], [`messages`], [`files`], [`vectors`], [`store`]), plus a
//! property test ([`model`]) that drives random operation sequences against a backend and the
//! memory reference model at once and compares every result.
//!
//! A backend's test file is a few lines: a factory giving a fresh, empty store, and the macro
//! that expands the suite into one test per contract of every group the store's
//! `Capabilities` promise (the file needs `harness = false`, see [`harness`]):
//!
//! ```ignore
//! async fn fresh() -> Option<chatstore_core::Store> {
//!     Some(chatstore_core::memory::store())
//! }
//! chatstore_contract::contract_suite!(memory, fresh);
//! ```
//!
//! Test names carry the backend, so `cargo test -p chatstore-contract sqlite::` selects one.
//! A backend that needs a server finds it with [`require_env`]: unset locally, the suite says
//! loudly that it skipped and every contract shows as ignored; unset under `CI=true`, the run
//! fails.

pub mod changes;
pub mod channels;
pub mod chats;
pub mod feedback;
pub mod files;
pub mod fixtures;
pub mod folders;
pub mod groups;
pub mod harness;
pub mod knowledge;
pub mod memories;
pub mod messages;
pub mod model;
pub mod model_rows;
pub mod notes;
pub mod presets;
pub mod prompts;
pub mod rows;
pub mod shared_chats;
pub mod store;
pub mod tags;
pub mod users;
pub mod vectors;
pub mod workspace;

use std::future::Future;

pub use chatstore_core::{Result, Store};

/// The value of a server variable such as `CHATSTORE_TEST_POSTGRES_URL`. Unset or empty:
/// `None` after a loud message, or a panic when `CI=true` (a missing server fails CI).
pub fn require_env(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Some(value),
        _ => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            if ci {
                panic!(
                    "{name} is not set but CI=true: start the servers with `scripts/services.sh start` \
                     (scripts/test.sh does it) so this backend is tested"
                );
            }
            eprintln!(
                "SKIPPED: {name} is not set, so this backend's contract test did not run. \
                 Run `eval \"$(scripts/services.sh start)\"` first, or use scripts/test.sh."
            );
            None
        }
    }
}

/// Runs one contract against a fresh store from `factory`; skips (loudly, in
/// [`require_env`]) when the factory has no server.
pub async fn run<F, Fut, C, CFut>(factory: F, contract: C)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Option<Store>>,
    C: FnOnce(Store) -> CFut,
    CFut: Future<Output = Result<()>>,
{
    let Some(store) = factory().await else {
        return;
    };
    if let Err(error) = contract(store).await {
        panic!("contract failed with an error: {error} ({error:?})");
    }
}

/// Expands the contract suite into a test `main` for the factory `$factory` (an
/// `async fn() -> Option<Store>` in scope): the groups run are the ones the store's
/// `Capabilities` promise (see [`harness`]), one test per contract named
/// `$backend::group::contract`, plus the property test against the memory model. The test file
/// needs `harness = false` in `contract-tests/Cargo.toml`.
///
/// An optional group list narrows the run further (`contract_suite!(x, fresh, [users])`);
/// normally the capabilities decide.
#[macro_export]
macro_rules! contract_suite {
    ($backend:ident, $factory:path) => {
        $crate::contract_suite!(
            $backend,
            $factory,
            [
                users, chats, tags, messages, files, vectors, store, rows, folders, groups,
                memories, knowledge, notes, prompts, presets, channels, feedback, shared_chats,
                workspace, changes
            ]
        );
    };
    ($backend:ident, $factory:path, [$($group:ident),* $(,)?]) => {
        // Only the libtest harness runs `#[test]` functions: this one fails a file that was
        // left on it (its `main` would be dead code and nothing would run).
        #[test]
        fn contract_suite_needs_harness_false() {
            panic!(
                "contract_suite! brings its own test harness: give this file a `[[test]]` \
                 entry with `harness = false` in contract-tests/Cargo.toml"
            );
        }

        mod $backend {
            #[allow(unused_imports)]
            use super::*;
            $( $crate::__contract_group!($group, $factory); )*
        }

        fn main() -> std::process::ExitCode {
            let mut contracts = Vec::new();
            $( contracts.extend($backend::$group::contracts()); )*
            $crate::harness::run_suite(stringify!($backend), $factory, contracts)
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __contract_tests {
    ($factory:path, $module:ident; $($test:ident),* $(,)?) => {
        pub(crate) mod $module {
            pub(crate) fn contracts() -> Vec<$crate::harness::Contract> {
                vec![$(
                    $crate::harness::Contract {
                        group: stringify!($module),
                        name: stringify!($test),
                        run: |store| -> $crate::harness::ContractFuture {
                            Box::pin(async move { $crate::$module::$test(&store).await })
                        },
                    },
                )*]
            }
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __contract_group {
    (users, $f:path) => {
        $crate::__contract_tests!($f, users;
            create_then_get_returns_the_same_user,
            create_keeps_given_id_and_timestamps,
            create_fills_in_defaults,
            duplicate_user_id_is_a_conflict,
            email_is_unique_case_insensitively,
            get_by_email_ignores_case,
            missing_user_is_not_found,
            update_changes_only_given_fields,
            update_to_a_taken_email_is_a_conflict_and_changes_nothing,
            invalid_user_input_is_refused_and_changes_nothing,
            users_list_newest_first_with_ties_by_id,
            user_scan_walks_every_user_by_id,
            create_many_users_is_all_or_nothing,
            create_many_users_checks_the_batch_itself,
            ids_with_reserved_characters_are_refused,
            last_active_at_is_kept_and_scan_ids_follow_scan,
            set_last_active_sets_that_time_alone,
            session_stamps_are_stable_or_unsupported,
        );
    };
    (chats, $f:path) => {
        $crate::__contract_tests!($f, chats;
            create_then_get_round_trips_a_chat,
            title_is_mirrored_into_the_blob,
            title_defaults_to_the_blob_title_then_new_chat,
            duplicate_chat_id_is_a_conflict,
            share_id_is_unique,
            missing_chat_is_not_found,
            update_changes_given_fields_and_updated_at,
            update_cannot_replace_the_message_history,
            list_orders_by_updated_at_desc_then_id,
            pagination_is_stable_and_total_counts_every_match,
            archived_chats_are_hidden_by_default,
            pinned_filter_selects_by_pinned,
            folder_filter_selects_by_folder,
            title_search_is_case_insensitive_for_unicode,
            title_search_treats_wildcards_literally,
            internal_chats_are_never_listed_or_counted,
            include_internal_lists_internal_chats_too,
            list_can_order_by_created_at_and_title,
            cursor_pages_walk_the_list_in_every_order,
            a_cursor_of_another_order_is_invalid,
            deleting_a_chat_removes_its_messages,
            delete_for_user_removes_only_that_users_chats,
            invalid_chat_input_is_refused_and_changes_nothing,
            timestamps_past_2_pow_53_are_refused,
            chat_scan_walks_every_chat_including_internal,
            create_many_chats_is_all_or_nothing,
            create_many_chats_adds_missing_tags_and_keeps_existing_ones,
            meta_tags_of_a_new_chat_become_its_tags,
            history_in_a_new_chat_becomes_messages,
            lists_of_another_user_are_empty,
            title_search_pages_without_a_total_match_list,
        );
    };
    (tags, $f:path) => {
        $crate::__contract_tests!($f, tags;
            tag_ids_derive_from_names,
            chat_tags_are_a_set,
            tag_filter_means_all_of,
            tag_filter_accepts_names_or_ids,
            untagged_filter_lists_chats_without_tags,
            removing_the_last_use_deletes_the_tag,
            a_tag_used_by_another_chat_survives,
            deleting_a_chat_removes_its_orphan_tags,
            set_tags_replaces_the_set_and_cleans_up,
            tags_are_per_user,
            none_is_reserved,
            tag_operations_do_not_touch_updated_at,
            tag_usage_counts_chats_without_internal_ones,
            deleting_a_tag_removes_it_from_chats,
            the_first_spelling_of_a_tag_name_is_kept,
            create_many_tags_is_all_or_nothing,
            tag_scan_walks_by_user_then_id,
            tag_operations_on_a_missing_chat_are_not_found,
            an_empty_all_of_filter_is_invalid,
            removing_an_absent_tag_changes_nothing,
            a_bare_number_in_tag_meta_round_trips,
        );
    };
    (messages, $f:path) => {
        $crate::__contract_tests!($f, messages;
            upsert_then_get_and_list_in_created_order,
            upsert_mirrors_the_message_into_the_blob,
            upsert_replaces_and_keeps_created_at,
            a_replaced_message_keeps_the_clients_own_keys,
            a_new_message_without_created_at_takes_its_updated_at,
            deleting_a_message_removes_row_and_blob_entry,
            message_for_a_missing_chat_is_not_found,
            missing_message_is_not_found,
            message_ids_are_scoped_to_their_chat,
            upsert_raises_the_chat_updated_at,
            invalid_message_is_refused_and_changes_nothing,
            upsert_many_is_all_or_nothing,
            message_scan_walks_by_key,
            a_message_key_taken_by_another_chat_is_a_conflict,
            orphan_scan_finds_nothing_while_chats_hold_their_messages,
            list_many_answers_each_chats_list,
            block_content_round_trips,
            author_defaults_to_the_chat_owner,
            optional_message_fields_round_trip,
            bare_json_values_round_trip,
        );
    };
    (files, $f:path) => {
        $crate::__contract_tests!($f, files;
            put_then_read_round_trips_bytes,
            sha256_of_the_bytes_is_recorded,
            empty_files_are_allowed,
            duplicate_file_id_is_a_conflict,
            missing_file_is_not_found,
            files_list_newest_first_with_total,
            delete_removes_metadata_and_bytes,
            invalid_file_is_refused_and_changes_nothing,
            put_many_is_all_or_nothing,
            file_scan_walks_by_id,
            delete_for_user_removes_only_that_users_files,
            streamed_upload_round_trips_and_records_size_and_hash,
            byte_ranges_read_exactly_the_asked_bytes,
            a_range_outside_the_file_is_invalid,
            a_hash_mismatch_is_refused_and_stores_nothing,
            an_upload_cut_off_mid_stream_stores_nothing,
            an_upload_dropped_half_way_stores_nothing,
            a_streamed_upload_to_a_taken_id_is_a_conflict,
            an_empty_streamed_file_is_a_file,
            download_url_is_a_signed_link_or_unsupported,
        );
    };
    (vectors, $f:path) => {
        $crate::__contract_tests!($f, vectors;
            insert_then_get_returns_items_by_id,
            metadata_values_round_trip_exactly,
            has_collection_follows_its_rows,
            search_returns_nearest_first_with_open_webui_scores,
            search_takes_many_query_vectors,
            search_stays_inside_the_collection,
            search_filter_equality,
            search_filter_in,
            filter_values_compare_as_text,
            searching_a_missing_collection_gives_empty_lists,
            inserting_a_taken_id_is_a_conflict_and_inserts_nothing,
            upsert_replaces_and_moves_items,
            upsert_many_writes_each_collection,
            upsert_many_is_all_or_nothing,
            optimize_many_keeps_searches_exact,
            a_wrong_dimension_is_refused,
            bad_vectors_filters_and_limits_are_refused,
            query_filters_without_a_vector,
            delete_by_ids_and_by_filter,
            delete_collection_and_reset,
            collections_are_listed,
            filtered_search_is_exact_in_a_small_share,
            delete_needs_ids_or_a_filter,
            vector_scan_walks_a_collection_by_id,
        );
    };
    (rows, $f:path) => {
        $crate::__contract_tests!($f, rows;
            inserted_rows_read_back_whole,
            values_of_every_kind_round_trip,
            inserting_a_taken_key_is_a_conflict,
            unique_values_clash_but_nulls_do_not,
            upsert_replaces_the_whole_row,
            upsert_onto_another_rows_unique_is_a_conflict,
            update_sets_columns_on_matching_rows,
            update_to_a_taken_unique_is_a_conflict,
            delete_removes_matching_rows,
            a_failing_batch_changes_nothing,
            eq_and_ne_treat_null_as_a_value,
            in_matches_listed_values,
            null_checks_split_rows,
            ranges_compare_numbers_and_text_bytes,
            contains_ci_ignores_ascii_case_only,
            any_is_an_or_of_ands,
            order_puts_nulls_first_ascending_and_breaks_ties_by_key,
            pages_over_ties_neither_skip_nor_repeat,
            unknown_columns_are_refused,
            values_that_do_not_fit_are_refused,
            conditions_that_cannot_apply_are_refused,
            unfiltered_or_key_changing_writes_are_refused,
            tables_are_separate_and_counts_follow_filters,
        );
    };
    (folders, $f:path) => {
        $crate::__contract_tests!($f, folders;
            create_then_get_round_trips_a_folder,
            sibling_names_are_unique_ignoring_case,
            a_parent_must_be_the_users_folder,
            children_and_subtrees_follow_nesting,
            update_merges_renames_and_refuses_clashes,
            a_folder_cannot_move_into_its_subtree,
            deleting_a_folder_deletes_its_subtree_and_chats,
            deleting_a_folder_can_detach_its_chats,
            deleting_a_folder_covers_its_internal_chats,
            invalid_folder_input_is_refused,
        );
    };
    (groups, $f:path) => {
        $crate::__contract_tests!($f, groups;
            create_then_get_round_trips_a_group,
            members_are_added_once_and_removed,
            membership_is_inherited_upwards,
            group_nesting_refuses_cycles,
            deleting_a_group_promotes_children_and_drops_members,
            grants_are_a_set_per_resource,
            access_follows_user_group_and_public_grants,
            invalid_grants_are_refused,
        );
    };
    (memories, $f:path) => {
        $crate::__contract_tests!($f, memories;
            memories_round_trip_with_normalised_types,
            memories_list_per_user_oldest_first,
            memory_updates_merge_and_respect_the_owner,
            delete_for_user_removes_only_their_memories,
            invalid_memories_are_refused,
        );
    };
    (knowledge, $f:path) => {
        $crate::__contract_tests!($f, knowledge;
            knowledge_round_trips_and_updates,
            knowledge_search_follows_access,
            knowledge_files_are_a_set_with_directories,
        );
    };
    (notes, $f:path) => {
        $crate::__contract_tests!($f, notes;
            notes_keep_nanoseconds_and_merge,
            pins_are_per_user_and_follow_access,
            note_search_matches_titles,
        );
    };
    (prompts, $f:path) => {
        $crate::__contract_tests!($f, prompts;
            prompts_are_addressed_by_unique_commands,
            every_change_records_a_version,
            versions_restore_and_delete,
            prompt_search_matches_text_and_access,
            prompt_tags_filter_searches_and_list,
        );
    };
    (presets, $f:path) => {
        $crate::__contract_tests!($f, presets;
            models_keep_their_ids,
            model_versions_follow_the_snapshot,
            model_search_lists_accessible_presets,
            model_tags_come_from_meta,
        );
    };
    (channels, $f:path) => {
        $crate::__contract_tests!($f, channels;
            users_see_member_and_granted_channels,
            membership_follows_joins_leaves_and_posts,
            threads_list_apart_and_delete_together,
        );
    };
    (feedback, $f:path) => {
        $crate::__contract_tests!($f, feedback;
            feedback_round_trips_with_its_snapshot,
            feedback_lists_sort_and_page,
            feedback_changes_belong_to_their_author,
        );
    };
    (shared_chats, $f:path) => {
        $crate::__contract_tests!($f, shared_chats;
            sharing_snapshots_refreshes_and_unshares,
            shared_chats_list_per_user,
        );
    };
    (workspace, $f:path) => {
        $crate::__contract_tests!($f, workspace;
            deleting_a_user_deletes_their_rows_in_every_table,
            deleting_a_user_deletes_their_memory_vectors,
            records_scan_by_id_in_keyset_pages,
            deleting_a_chat_deletes_its_shares_and_file_links,
            deleting_a_file_deletes_its_links,
            deleting_a_user_deletes_the_links_of_their_chats_and_files,
        );
    };
    (changes, $f:path) => {
        $crate::__contract_tests!($f, changes;
            a_new_user_is_announced,
            a_users_activity_is_announced_live,
            a_new_chat_is_announced_to_its_owner,
            a_renamed_chat_is_announced_as_updated,
            a_deleted_chat_is_announced,
            a_message_is_announced_with_its_chat,
            a_file_and_its_deletion_are_announced,
            a_subscription_hears_only_its_users_changes,
            what_changed_since_a_time_is_read_back,
            changes_since_names_records_by_their_ids,
            a_message_edited_since_a_time_is_read_back,
        );
    };
    (store, $f:path) => {
        $crate::__contract_tests!($f, store;
            deleting_a_user_deletes_everything_the_user_owns,
            deleting_a_missing_user_is_not_found,
            missing_capabilities_answer_unsupported,
            backend_reports_a_name,
        );
    };
}

/// Every contract of every group, for a harness that runs the suite against several stores in
/// one test binary (see [`harness::suite_trials`]).
pub fn every_contract() -> Vec<harness::Contract> {
    mod every {
        crate::__contract_group!(users, unused);
        crate::__contract_group!(chats, unused);
        crate::__contract_group!(tags, unused);
        crate::__contract_group!(messages, unused);
        crate::__contract_group!(files, unused);
        crate::__contract_group!(vectors, unused);
        crate::__contract_group!(store, unused);
        crate::__contract_group!(changes, unused);
    }
    let mut all = Vec::new();
    all.extend(every::users::contracts());
    all.extend(every::chats::contracts());
    all.extend(every::tags::contracts());
    all.extend(every::messages::contracts());
    all.extend(every::files::contracts());
    all.extend(every::vectors::contracts());
    all.extend(every::store::contracts());
    all.extend(every::changes::contracts());
    all
}

/// Every contract of the groups over rows (the row store and the models of Open WebUI's
/// remaining tables), for a harness that runs them against a store made of others (the router
/// adds these once it routes rows).
pub fn every_rows_contract() -> Vec<harness::Contract> {
    mod every {
        crate::__contract_group!(rows, unused);
        crate::__contract_group!(folders, unused);
        crate::__contract_group!(groups, unused);
        crate::__contract_group!(memories, unused);
        crate::__contract_group!(knowledge, unused);
        crate::__contract_group!(notes, unused);
        crate::__contract_group!(prompts, unused);
        crate::__contract_group!(presets, unused);
        crate::__contract_group!(channels, unused);
        crate::__contract_group!(feedback, unused);
        crate::__contract_group!(shared_chats, unused);
        crate::__contract_group!(workspace, unused);
    }
    let mut all = Vec::new();
    all.extend(every::rows::contracts());
    all.extend(every::folders::contracts());
    all.extend(every::groups::contracts());
    all.extend(every::memories::contracts());
    all.extend(every::knowledge::contracts());
    all.extend(every::notes::contracts());
    all.extend(every::prompts::contracts());
    all.extend(every::presets::contracts());
    all.extend(every::channels::contracts());
    all.extend(every::feedback::contracts());
    all.extend(every::shared_chats::contracts());
    all.extend(every::workspace::contracts());
    all
}

/// The contract groups over rows: they run on every store that keeps app data (users and
/// chats), which must have rows; a store without fails them.
pub const ROWS_GROUPS: &[&str] = &[
    "rows",
    "folders",
    "groups",
    "memories",
    "knowledge",
    "notes",
    "prompts",
    "presets",
    "channels",
    "feedback",
    "shared_chats",
    "workspace",
];

/// Asserts that a result is an error of the given kind.
#[macro_export]
macro_rules! assert_kind {
    ($result:expr, $kind:ident) => {
        match $result {
            Ok(value) => panic!(
                "expected {} but the call succeeded with {:?}",
                stringify!($kind),
                value
            ),
            Err(error) => assert_eq!(
                error.kind(),
                chatstore_core::ErrorKind::$kind,
                "expected {} but got {error}",
                stringify!($kind)
            ),
        }
    };
}
