using System.Net.Http;
using System.Net.Sockets;
using DotNet.Testcontainers.Builders;
using Npgsql;
using RsCapRet.Core;
using RsCapRet.Storage;
using Testcontainers.PostgreSql;
using Xunit;

namespace RsCapRet.TestSupport;

/// <summary>
/// A throwaway, migrated database for one test class: a Testcontainers PostGIS+pgvector container where a
/// Docker engine answers, otherwise a fresh database on the local server that scripts/db.sh started
/// (RSCAPRET_DB or .data/db.env), dropped again afterwards. <see cref="MigrateThrough"/> stops at that migration, for tests
/// of an upgrade from an older catalogue.
/// </summary>
public sealed class TestDatabase : IAsyncLifetime
{
    private PostgreSqlContainer? _container;

    /// <summary>The last migration to apply (null: all of them).</summary>
    public int? MigrateThrough { get; init; }
    private string? _adminConnectionString;
    private string? _databaseName;

    public string ConnectionString { get; private set; } = "";
    public NpgsqlDataSource DataSource { get; private set; } = null!;
    public IReadOnlyList<int> AppliedOnCreate { get; private set; } = [];
    public string Backend { get; private set; } = "";

    public async Task InitializeAsync()
    {
        if (await DockerEngineAnswersAsync())
        {
            var root = RepositoryPaths.FindRoot();
            var image = new ImageFromDockerfileBuilder()
                .WithDockerfileDirectory(Path.Combine(root, "docker", "db"))
                .WithName("rscapret-db:test")
                .Build();
            await image.CreateAsync();
            _container = new PostgreSqlBuilder(image).Build();
            await _container.StartAsync();
            ConnectionString = _container.GetConnectionString();
            Backend = "testcontainers";
        }
        else
        {
            _adminConnectionString = RsCapRetDatabase.ResolveConnectionString();
            _databaseName = "rscapret_test_" + Guid.NewGuid().ToString("N")[..12];
            await using (var conn = new NpgsqlConnection(_adminConnectionString))
            {
                await conn.OpenAsync();
                await using var cmd = new NpgsqlCommand($"CREATE DATABASE \"{_databaseName}\"", conn);
                await cmd.ExecuteNonQueryAsync();
            }
            // Test classes build their catalogues in parallel on a 2-core machine; a fixture's bulk insert (COPY with the
            // HNSW index maintained) waited more than Npgsql's default 30 s for the server in a fresh clone's first run.
            ConnectionString = new NpgsqlConnectionStringBuilder(_adminConnectionString) { Database = _databaseName, Pooling = true, CommandTimeout = 300 }.ConnectionString;
            Backend = "local";
        }
        AppliedOnCreate = await MigrationRunner.ApplyAsync(ConnectionString,
            MigrateThrough is { } last ? MigrationRunner.Embedded().Where(m => m.Version <= last).ToList() : null);
        DataSource = RsCapRetDatabase.CreateDataSource(ConnectionString);
    }

    public async Task DisposeAsync()
    {
        if (DataSource != null) await DataSource.DisposeAsync();
        if (_container != null) await _container.DisposeAsync();
        if (_databaseName != null && _adminConnectionString != null)
        {
            NpgsqlConnection.ClearAllPools();
            await using var conn = new NpgsqlConnection(_adminConnectionString);
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{_databaseName}\" WITH (FORCE)", conn);
            await cmd.ExecuteNonQueryAsync();
        }
    }

    /// <summary>True when a Docker engine answers /_ping on DOCKER_HOST or the default Unix socket.</summary>
    public static async Task<bool> DockerEngineAnswersAsync()
    {
        var host = Environment.GetEnvironmentVariable("DOCKER_HOST");
        string? socket = host switch
        {
            null or "" => "/var/run/docker.sock",
            _ when host.StartsWith("unix://", StringComparison.Ordinal) => host["unix://".Length..],
            _ => null,
        };
        try
        {
            using var handler = new SocketsHttpHandler();
            Uri baseUri;
            if (socket != null)
            {
                if (!File.Exists(socket)) return false;
                handler.ConnectCallback = async (_, token) =>
                {
                    var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                    await s.ConnectAsync(new UnixDomainSocketEndPoint(socket), token);
                    return new NetworkStream(s, ownsSocket: true);
                };
                baseUri = new Uri("http://docker/");
            }
            else baseUri = new Uri(host!.Replace("tcp://", "http://"));
            using var http = new HttpClient(handler) { BaseAddress = baseUri, Timeout = TimeSpan.FromSeconds(3) };
            var response = await http.GetAsync("_ping");
            return response.IsSuccessStatusCode;
        }
        catch (Exception e) when (e is HttpRequestException or SocketException or TaskCanceledException or IOException)
        {
            return false;
        }
    }
}
