-- DuckDB rewrites a demo day that `tally source export` wrote ({landing}) the
-- way a partner's data team would deliver it ({out}/parquet and {out}/csv):
-- rows in a shuffled (hashed) order, customer and user ids as UUID, counts as
-- DECIMAL(18,0), DECIMAL(38,0) or INTEGER, timestamps as TIMESTAMP without a
-- time zone (UTC wall-clock), lists as VARCHAR[]; and as CSV with its columns
-- in reverse order, lists as JSON text, DuckDB's own timestamp text.
-- Made by: cd bench/duckdb && go run . -fixtures ../../source/files/testdata/duckdb -tally ../../bin/tally
SET threads = 1;
SET preserve_insertion_order = true;
SET TimeZone = 'UTC';

CREATE MACRO src(entity) AS TABLE
  SELECT * FROM read_parquet('{landing}/' || entity || '/*/*/*.parquet', hive_partitioning = true, hive_types = {'region': VARCHAR, 'day': VARCHAR});

CREATE TABLE partners AS SELECT * FROM src('partners');
CREATE TABLE customers AS
  SELECT customer_id::UUID AS customer_id, customer_name, partner_id, external_id, managed_by, products, tags,
         created_at::TIMESTAMP AS created_at, last_admin_login_at::TIMESTAMP AS last_admin_login_at, region, day
  FROM src('customers');
CREATE TABLE subscriptions AS
  SELECT subscription_id, subscriber_id, customer_id::UUID AS customer_id, product, is_trial, status,
         created_at::TIMESTAMP AS created_at, start_date, end_date, auto_renew, order_id,
         licenses_total::DECIMAL(18,0) AS licenses_total, licenses_assigned::INTEGER AS licenses_assigned,
         licenses_used_7d::DECIMAL(38,0) AS licenses_used_7d, provisioning_statuses, region, day
  FROM src('subscriptions');
CREATE TABLE orders AS
  SELECT order_id, customer_id::UUID AS customer_id, partner_id, subscriber_id, license_type, quantity::INTEGER AS quantity, region, day
  FROM src('orders');
CREATE TABLE clusters AS SELECT * REPLACE (customer_id::UUID AS customer_id) FROM src('clusters');
CREATE TABLE servers AS SELECT * REPLACE (customer_id::UUID AS customer_id) FROM src('servers');
CREATE TABLE users AS SELECT * REPLACE (user_id::UUID AS user_id, customer_id::UUID AS customer_id) FROM src('users');
CREATE TABLE devices AS SELECT * REPLACE (customer_id::UUID AS customer_id, user_id::UUID AS user_id) FROM src('devices');
CREATE TABLE numbers AS SELECT * REPLACE (customer_id::UUID AS customer_id, user_uuid::UUID AS user_uuid) FROM src('numbers');
CREATE TABLE calls AS
  SELECT * REPLACE (customer_id::UUID AS customer_id, user_id::UUID AS user_id, start_time::TIMESTAMP AS start_time,
                    duration_seconds::DECIMAL(18,0) AS duration_seconds, queue_wait_seconds::INTEGER AS queue_wait_seconds)
  FROM src('calls');

-- Parquet, shuffled: ORDER BY a hash of the row, so the order is the same on every run.
COPY (SELECT * FROM partners ORDER BY md5(partners::VARCHAR)) TO '{out}/parquet/partners' (FORMAT parquet, PARTITION_BY (region, day), FILENAME_PATTERN 'part_{i}');
COPY (SELECT * FROM customers ORDER BY md5(customers::VARCHAR)) TO '{out}/parquet/customers' (FORMAT parquet, PARTITION_BY (region, day), FILENAME_PATTERN 'part_{i}');
COPY (SELECT * FROM subscriptions ORDER BY md5(subscriptions::VARCHAR)) TO '{out}/parquet/subscriptions' (FORMAT parquet, PARTITION_BY (region, day), FILENAME_PATTERN 'part_{i}');
COPY (SELECT * FROM orders ORDER BY md5(orders::VARCHAR)) TO '{out}/parquet/orders' (FORMAT parquet, PARTITION_BY (region, day), FILENAME_PATTERN 'part_{i}');
COPY (SELECT * FROM clusters ORDER BY md5(clusters::VARCHAR)) TO '{out}/parquet/clusters' (FORMAT parquet, PARTITION_BY (region, day), FILENAME_PATTERN 'part_{i}');
COPY (SELECT * FROM servers ORDER BY md5(servers::VARCHAR)) TO '{out}/parquet/servers' (FORMAT parquet, PARTITION_BY (region, day), FILENAME_PATTERN 'part_{i}');
COPY (SELECT * FROM users ORDER BY md5(users::VARCHAR)) TO '{out}/parquet/users' (FORMAT parquet, PARTITION_BY (region, day), FILENAME_PATTERN 'part_{i}');
COPY (SELECT * FROM devices ORDER BY md5(devices::VARCHAR)) TO '{out}/parquet/devices' (FORMAT parquet, PARTITION_BY (region, day), FILENAME_PATTERN 'part_{i}');
COPY (SELECT * FROM numbers ORDER BY md5(numbers::VARCHAR)) TO '{out}/parquet/numbers' (FORMAT parquet, PARTITION_BY (region, day), FILENAME_PATTERN 'part_{i}');
COPY (SELECT * FROM calls ORDER BY md5(calls::VARCHAR)) TO '{out}/parquet/calls' (FORMAT parquet, PARTITION_BY (region, day), FILENAME_PATTERN 'part_{i}');

-- CSV: the same rows, columns in reverse order (the header says which is which), lists as JSON text.
COPY (SELECT partner_name, partner_id, region, day FROM partners ORDER BY md5(partners::VARCHAR)) TO '{out}/csv/partners' (FORMAT csv, HEADER, PARTITION_BY (region, day), FILENAME_PATTERN 'part_{i}');
COPY (SELECT last_admin_login_at, created_at, to_json(tags)::VARCHAR AS tags, to_json(products)::VARCHAR AS products, managed_by, external_id, partner_id, customer_name, customer_id, region, day FROM customers ORDER BY md5(customers::VARCHAR)) TO '{out}/csv/customers' (FORMAT csv, HEADER, PARTITION_BY (region, day), FILENAME_PATTERN 'part_{i}');
COPY (SELECT to_json(provisioning_statuses)::VARCHAR AS provisioning_statuses, licenses_used_7d, licenses_assigned, licenses_total, order_id, auto_renew, end_date, start_date, created_at, status, is_trial, product, customer_id, subscriber_id, subscription_id, region, day FROM subscriptions ORDER BY md5(subscriptions::VARCHAR)) TO '{out}/csv/subscriptions' (FORMAT csv, HEADER, PARTITION_BY (region, day), FILENAME_PATTERN 'part_{i}');
COPY (SELECT quantity, license_type, subscriber_id, partner_id, customer_id, order_id, region, day FROM orders ORDER BY md5(orders::VARCHAR)) TO '{out}/csv/orders' (FORMAT csv, HEADER, PARTITION_BY (region, day), FILENAME_PATTERN 'part_{i}');
COPY (SELECT version, fqdn, customer_id, cluster_id, region, day FROM clusters ORDER BY md5(clusters::VARCHAR)) TO '{out}/csv/clusters' (FORMAT csv, HEADER, PARTITION_BY (region, day), FILENAME_PATTERN 'part_{i}');
COPY (SELECT version, role, host, customer_id, cluster_id, server_id, region, day FROM servers ORDER BY md5(servers::VARCHAR)) TO '{out}/csv/servers' (FORMAT csv, HEADER, PARTITION_BY (region, day), FILENAME_PATTERN 'part_{i}');
COPY (SELECT has_directory_profile, has_mobile_client, has_voicemail, has_extension_mobility, has_snr, has_dn, email, cluster_id, customer_id, user_id, region, day FROM users ORDER BY md5(users::VARCHAR)) TO '{out}/csv/users' (FORMAT csv, HEADER, PARTITION_BY (region, day), FILENAME_PATTERN 'part_{i}');
COPY (SELECT extension, phone_number, location_name, location_id, firmware, mac, product, device_type, user_id, cluster_id, customer_id, device_id, region, day FROM devices ORDER BY md5(devices::VARCHAR)) TO '{out}/csv/devices' (FORMAT csv, HEADER, PARTITION_BY (region, day), FILENAME_PATTERN 'part_{i}');
COPY (SELECT user_uuid, user_id, number_type, user_type, is_active, pstn_connection, country, location_name, location_id, customer_id, extension, number, region, day FROM numbers ORDER BY md5(numbers::VARCHAR)) TO '{out}/csv/numbers' (FORMAT csv, HEADER, PARTITION_BY (region, day), FILENAME_PATTERN 'part_{i}');
COPY (SELECT queue_wait_seconds, queue_outcome, routed_via, video_loss_pct, video_latency_ms, video_jitter_ms, audio_loss_pct, audio_latency_ms, audio_jitter_ms, is_video, direction, duration_seconds, start_time, device_type, user_id, location_id, customer_id, call_id, leg_id, region, day FROM calls ORDER BY md5(calls::VARCHAR)) TO '{out}/csv/calls' (FORMAT csv, HEADER, PARTITION_BY (region, day), FILENAME_PATTERN 'part_{i}');

-- A count with two decimal places where the contract wants an integer: refused, naming file, column and type.
COPY (SELECT subscription_id, subscriber_id, customer_id, product, is_trial, status, created_at, start_date, end_date, auto_renew, order_id,
             licenses_total::DECIMAL(10,2) AS licenses_total, licenses_assigned, licenses_used_7d
      FROM subscriptions LIMIT 3) TO '{out}/decimal-scale-2.parquet' (FORMAT parquet);
