using Npgsql;
using RsCapRet.Core;
using RsCapRet.Storage;
using RsCapRet.TestSupport;

namespace RsCapRet.Storage.Tests;

/// <summary>What `db status` reads (<see cref="DatabaseStatus"/>), and the shared-space size the catalogue's columns are made for.</summary>
public sealed class DatabaseStatusTests(TestDatabase db) : IClassFixture<TestDatabase>
{
    [Fact]
    public async Task A_migrated_catalogue_shows_its_migrations_extensions_counts_and_sizes()
    {
        var status = await DatabaseStatus.ReadAsync(db.ConnectionString);
        Assert.Equal(new NpgsqlConnectionStringBuilder(db.ConnectionString).Database, status.Database);
        Assert.Contains(status.Extensions, e => e.StartsWith("postgis ", StringComparison.Ordinal));
        Assert.Contains(status.Extensions, e => e.StartsWith("vector ", StringComparison.Ordinal));
        Assert.Equal(MigrationRunner.Embedded().Select(m => m.Version).Order(), status.Applied.Select(m => m.Version));
        Assert.Empty(status.Pending);
        var catalogue = Assert.IsType<CatalogueStatus>(status.Catalogue);
        Assert.Equal(0, catalogue.Tiles);
        Assert.Equal("none", catalogue.Scenes);
        Assert.Contains(catalogue.Relations, r => r.IsTable && r.Name == "tiles");
        Assert.All(catalogue.Relations, r => Assert.True(r.SharedBufferBytes > 0));
        Assert.False(string.IsNullOrEmpty(catalogue.Settings.SharedBuffers));
    }

    [Fact]
    public async Task The_vector_columns_hold_vectors_of_the_shared_space()
    {
        await using var cmd = db.DataSource.CreateCommand("""
            SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'tiles'::regclass AND attname = 'embedding'
            """);
        Assert.Equal($"vector({SharedSpace.Dimensions})", (string?)await cmd.ExecuteScalarAsync());
    }

    [Fact]
    public async Task A_model_is_named_by_its_id()
    {
        var store = new CatalogStore(db.DataSource);
        var id = await store.RegisterModelAsync(new ModelIdentity("status-test", "1.2", "llm", "vision", "heads-sha"));
        Assert.Equal(("status-test", "1.2"), await store.ModelNameAsync(id));
        Assert.Null(await store.ModelNameAsync(int.MaxValue));
    }
}
