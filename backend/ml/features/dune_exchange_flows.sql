-- LeviBot default on-chain query (Dune SQL): last 24 h of the asset's activity.
-- {{asset}} is the base asset (BTC, ETH, ...). Run as-is through Dune's SQL endpoint, or save it
-- as a query in your Dune account and set LEVIBOT_DUNE_QUERY_ID (the parameter is then "asset").
-- Columns: active_addresses_24h, exchange_inflow_usd, exchange_outflow_usd, whale_transactions_count.
WITH transfers AS (
    SELECT t."from" AS sender, t."to" AS receiver, t.amount_usd
    FROM tokens.transfers t
    WHERE t.block_time > now() - interval '24' hour
      AND t.symbol = '{{asset}}'
),
cex AS (
    SELECT DISTINCT address FROM cex.addresses
)
SELECT
    (SELECT count(DISTINCT a) FROM (SELECT sender AS a FROM transfers UNION SELECT receiver FROM transfers))
        AS active_addresses_24h,
    coalesce(sum(CASE WHEN receiver IN (SELECT address FROM cex) THEN amount_usd END), 0) AS exchange_inflow_usd,
    coalesce(sum(CASE WHEN sender IN (SELECT address FROM cex) THEN amount_usd END), 0) AS exchange_outflow_usd,
    count_if(amount_usd >= 1000000) AS whale_transactions_count
FROM transfers
