-- 0007_search.sql -- full-text search of messages (protocol v1.1, Search). The query
-- lives in termrooms/storage/search.py.

-- Words match whole and case-insensitively, in any language, without stemming or stop
-- words: the 'simple' dictionary (lower-casing only) behind the default parser. A copy
-- of our own, so that what a word is for termrooms can change in one place.
CREATE TEXT SEARCH CONFIGURATION termrooms_search (COPY = simple);

-- What the parser reads of a body: the body with '<' made a character no body holds
-- (U+0001). The default parser takes '<...>' for an HTML tag, which to_tsvector skips
-- (so `a<b and c>d` would hide its words) and ts_headline replaces with a space (so a
-- snippet would not be the body's text). The index and the snippet both read this.
CREATE FUNCTION termrooms_search_text(body TEXT) RETURNS TEXT
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN translate(body, '<', chr(1));

-- The messages search finds, by their current body: deleted ones leave the index.
-- An expression index rather than a stored tsvector column: no bigger rows, and a
-- posting only computes the vector once, for the index (docs/performance.md, Search).
CREATE INDEX room_events_search_idx ON room_events
    USING gin (to_tsvector('termrooms_search', termrooms_search_text(body)))
    WHERE type = 'message' AND deleted_at IS NULL;

-- How many messages a word matches, for the planner: a common word then reads the
-- newest messages in id order and stops at a page, a rare one reads the index. The
-- statistics of a partial index's expression are not used for that; these are.
CREATE STATISTICS room_events_search_stats
    ON (to_tsvector('termrooms_search', termrooms_search_text(body))) FROM room_events;
