//! Files on a node, read and written by the server process through SQL, so
//! no shell or SSH access to the node is needed.

use tokio_postgres::GenericClient;

use crate::sql;

/// The file's bytes, or `None` when it does not exist.
pub async fn read<C: GenericClient>(
    c: &C,
    path: &str,
) -> Result<Option<Vec<u8>>, tokio_postgres::Error> {
    let row = c.query_one(sql::READ_FILE, &[&path]).await?;
    row.try_get(0)
}

/// Replaces the file's content. Must run inside a transaction that the
/// caller rolls back or commits; the large object used to carry the bytes
/// is rolled back with it, while the file stays written. A new file gets
/// the server's umask (0600 with the default data directory mode).
pub async fn write<C: GenericClient>(
    c: &C,
    path: &str,
    bytes: &[u8],
) -> Result<(), tokio_postgres::Error> {
    let oid: u32 = c.query_one(sql::NEW_LARGE_OBJECT, &[&bytes]).await?.get(0);
    c.query_one(sql::EXPORT_LARGE_OBJECT, &[&oid, &path])
        .await?;
    Ok(())
}
