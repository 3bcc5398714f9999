using Npgsql;

namespace RsCapRet.Bench;

/// <summary>The throwaway databases benchmarks measure in, beside the catalogue on the same server (RSCAPRET_DB).</summary>
public static class BenchDatabase
{
    /// <summary>Creates <paramref name="name"/> unless it exists (a --keep run left it); returns its connection string.</summary>
    public static async Task<string> EnsureAsync(string admin, string name)
    {
        await using (var conn = new NpgsqlConnection(admin))
        {
            await conn.OpenAsync();
            await using var exists = new NpgsqlCommand("SELECT 1 FROM pg_database WHERE datname = $1", conn) { Parameters = { new() { Value = name } } };
            if (await exists.ExecuteScalarAsync() is null)
            {
                await using var create = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", conn);
                await create.ExecuteNonQueryAsync();
            }
        }
        return new NpgsqlConnectionStringBuilder(admin) { Database = name }.ConnectionString;
    }

    public static async Task DropAsync(string admin, string name)
    {
        NpgsqlConnection.ClearAllPools();
        await using var conn = new NpgsqlConnection(admin);
        await conn.OpenAsync();
        await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)", conn);
        await drop.ExecuteNonQueryAsync();
    }
}
