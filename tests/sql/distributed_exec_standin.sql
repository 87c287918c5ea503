-- A STAND-IN for TimescaleDB multi-node on a plain PostgreSQL access node,
-- for tests only. TimescaleDB multi-node (2.13 and earlier) cannot be
-- installed from the package registries these tests use, so this installs
-- what the provider looks for, with TimescaleDB's names and signatures:
--
--   * foreign servers of a `timescaledb_fdw` wrapper, one per data node,
--     with host/port/dbname options;
--   * the `timescaledb_information.data_nodes` view (node_name, owner,
--     options) over them;
--   * `distributed_exec(query text, node_list name[] DEFAULT NULL,
--     transactional boolean DEFAULT true)`, which runs the statement on
--     each data node (never on the access node) through dblink, connecting
--     as the current user with the access node's passfile (while the access
--     node's ssl is on, with TLS required and the user's certificate: see
--     standin_ssl_options), and refuses users without USAGE on a node's
--     foreign server, as TimescaleDB does.
--
-- Every call is recorded in standin_calls (statement kind and nodes only)
-- so tests can see which path the provider took.
--
-- psql variables: :passfile (path of the access node's passfile).

CREATE EXTENSION IF NOT EXISTS dblink;
CREATE FOREIGN DATA WRAPPER timescaledb_fdw;
CREATE SCHEMA timescaledb_information;
CREATE VIEW timescaledb_information.data_nodes AS
    SELECT s.srvname AS node_name, s.srvowner::regrole AS owner, s.srvoptions AS options
    FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
    WHERE w.fdwname = 'timescaledb_fdw';
GRANT USAGE ON SCHEMA timescaledb_information TO PUBLIC;
GRANT SELECT ON timescaledb_information.data_nodes TO PUBLIC;
CREATE TABLE public.standin_calls (id serial, kind text, node_list name[]);
GRANT INSERT ON public.standin_calls TO PUBLIC;
GRANT USAGE ON SEQUENCE standin_calls_id_seq TO PUBLIC;

CREATE FUNCTION public.standin_passfile() RETURNS text LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $f$ SELECT :'passfile'::text $f$;

-- Every function here runs with search_path pinned to pg_catalog and names
-- its own objects by schema, as TimescaleDB's C code is immune to what
-- other roles create in public: the tests plant look-alikes there.

-- Runs as its owner (a superuser, so dblink takes no password in the
-- connection string) but connects as the user who called distributed_exec.
CREATE FUNCTION public.standin_exec_on(node name, as_user name, query text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
    conn text;
BEGIN
    SELECT string_agg(o, ' ') INTO conn
    FROM timescaledb_information.data_nodes d, unnest(d.options) o
    WHERE d.node_name = node;
    PERFORM public.dblink_exec(conn || ' user=' || public.standin_quote(as_user)
                             || ' passfile=' || public.standin_quote(public.standin_passfile())
                             || public.standin_ssl_options(as_user)
                             || public.standin_session_options(), query);
END
$f$;

-- libpq connection-string quoting: single quotes, \ and ' escaped by \
CREATE FUNCTION public.standin_quote(v text) RETURNS text LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $q$ SELECT '''' || replace(replace(v, '\', '\\'), '''', '\''') || '''' $q$;

-- As TimescaleDB does: while the access node has ssl on, every data-node
-- connection requires TLS, trusts the access node's ssl_ca_file, and
-- presents the user's certificate from timescaledb.ssl_dir (default
-- <data_directory>/timescaledb/certs), files named by the md5 of the user
-- name. So a data node that serves no TLS cannot be reached while the access
-- node's ssl is on.
CREATE FUNCTION public.standin_ssl_options(as_user name) RETURNS text LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $s$
DECLARE
    data text := current_setting('data_directory');
    ca text := current_setting('ssl_ca_file');
    dir text := coalesce(nullif(current_setting('timescaledb.ssl_dir', true), ''), 'timescaledb/certs');
    opts text := ' sslmode=require';
BEGIN
    IF current_setting('ssl') <> 'on' THEN
        RETURN '';
    END IF;
    IF dir NOT LIKE '/%' THEN
        dir := data || '/' || dir;
    END IF;
    IF ca <> '' THEN
        IF ca NOT LIKE '/%' THEN
            ca := data || '/' || ca;
        END IF;
        opts := opts || ' sslrootcert=' || public.standin_quote(ca);
    END IF;
    RETURN opts || ' sslcert=' || public.standin_quote(dir || '/' || md5(as_user) || '.crt')
                || ' sslkey=' || public.standin_quote(dir || '/' || md5(as_user) || '.key');
END
$s$;

-- As TimescaleDB configures its data-node sessions (SET search_path =
-- pg_catalog, among others): what the statement names resolves in the
-- catalog, never in a schema other roles may create in.
CREATE FUNCTION public.standin_session_options() RETURNS text LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $o$ SELECT ' options=''-csearch_path=pg_catalog''' $o$;

-- Opens a dblink connection named for the node, as the given user, with
-- the same options standin_exec_on uses.
CREATE FUNCTION public.standin_connect(node name, as_user name) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
    conn text;
    link text := 'standin_' || node;
BEGIN
    SELECT string_agg(o, ' ') INTO conn
    FROM timescaledb_information.data_nodes d, unnest(d.options) o
    WHERE d.node_name = node;
    IF link = ANY(coalesce(public.dblink_get_connections(), '{}')) THEN
        PERFORM public.dblink_disconnect(link);
    END IF;
    PERFORM public.dblink_connect(link, conn || ' user=' || public.standin_quote(as_user)
                                 || ' passfile=' || public.standin_quote(public.standin_passfile())
                                 || public.standin_ssl_options(as_user)
                                 || public.standin_session_options());
    RETURN link;
END
$f$;

-- Runs a statement on a node connection and disconnects.
CREATE FUNCTION public.standin_run(link text, statements text[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
    q text;
BEGIN
    FOREACH q IN ARRAY statements LOOP
        PERFORM public.dblink_exec(link, q);
    END LOOP;
    PERFORM public.dblink_disconnect(link);
EXCEPTION WHEN OTHERS THEN
    IF link = ANY(coalesce(public.dblink_get_connections(), '{}')) THEN
        PERFORM public.dblink_disconnect(link);
    END IF;
    RAISE;
END
$f$;

-- Like TimescaleDB, a transactional call is one distributed transaction:
-- the statement is prepared on every node (two-phase commit) and committed
-- only when every node prepared it; a failure on any node rolls back the
-- nodes already prepared, so a failed call changes no data node. A call
-- with transactional => false runs on each node on its own, in order.
CREATE PROCEDURE public.distributed_exec(query text, node_list name[] DEFAULT NULL, transactional boolean DEFAULT true)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
    n name;
    known name[];
    prepared name[] := '{}';
    gid text := 'standin_' || md5(random()::text || clock_timestamp()::text);
BEGIN
    SELECT array_agg(node_name ORDER BY node_name) INTO known FROM timescaledb_information.data_nodes;
    IF node_list IS NULL THEN
        node_list := known;
    END IF;
    FOREACH n IN ARRAY node_list LOOP
        IF NOT n = ANY(known) THEN
            RAISE EXCEPTION 'server "%" does not exist', n;
        END IF;
        IF NOT has_server_privilege(current_user, n, 'USAGE') THEN
            RAISE EXCEPTION 'permission denied for foreign server %', n;
        END IF;
    END LOOP;
    INSERT INTO public.standin_calls(kind, node_list)
        VALUES (split_part(query, ' ', 1) || ' ' || split_part(query, ' ', 2), node_list);
    IF NOT transactional THEN
        FOREACH n IN ARRAY node_list LOOP
            PERFORM public.standin_exec_on(n, current_user, query);
        END LOOP;
        RETURN;
    END IF;
    BEGIN
        FOREACH n IN ARRAY node_list LOOP
            PERFORM public.standin_run(public.standin_connect(n, current_user),
                                ARRAY['BEGIN', query, 'PREPARE TRANSACTION ' || quote_literal(gid)]);
            prepared := prepared || n;
        END LOOP;
    EXCEPTION WHEN OTHERS THEN
        FOREACH n IN ARRAY prepared LOOP
            PERFORM public.standin_run(public.standin_connect(n, current_user),
                                ARRAY['ROLLBACK PREPARED ' || quote_literal(gid)]);
        END LOOP;
        RAISE;
    END;
    FOREACH n IN ARRAY prepared LOOP
        PERFORM public.standin_run(public.standin_connect(n, current_user),
                            ARRAY['COMMIT PREPARED ' || quote_literal(gid)]);
    END LOOP;
END
$f$;
