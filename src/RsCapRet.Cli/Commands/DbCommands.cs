using System.CommandLine;
using RsCapRet.Core;
using RsCapRet.Storage;

namespace RsCapRet.Cli.Commands;

/// <summary>`rscapret db migrate|status`: the catalogue database (connection from RSCAPRET_DB or --db).</summary>
public static class DbCommands
{
    public static readonly Option<string?> DbOption = new("--db")
    {
        Description = "Npgsql connection string (default: $RSCAPRET_DB, else .data/db.env written by scripts/db.sh)",
    };

    public static Command Build()
    {
        var db = new Command("db", "Manage the catalogue database");

        var migrate = new Command("migrate", "Apply pending SQL migrations from migrations/") { DbOption };
        CommandAction.Set(migrate, async (parse, output, ct) =>
        {
            var applied = await MigrationRunner.ApplyAsync(RsCapRetDatabase.ResolveConnectionString(parse.GetValue(DbOption)), ct: ct,
                log: line => output.WriteLine(line));
            await output.WriteLineAsync(applied.Count == 0
                ? "database is up to date"
                : $"applied migrations: {string.Join(", ", applied.Select(v => v.ToString("D4")))}");
            return 0;
        });

        var status = new Command("status", "Show applied migrations, extensions and catalogue counts") { DbOption };
        CommandAction.Set(status, async (parse, output, ct) =>
        {
            var status = await DatabaseStatus.ReadAsync(RsCapRetDatabase.ResolveConnectionString(parse.GetValue(DbOption)), ct);
            await output.WriteLineAsync($"server: {status.Host}:{status.Port} database {status.Database} (PostgreSQL {status.ServerVersion})");
            foreach (var extension in status.Extensions) await output.WriteLineAsync($"extension: {extension}");
            foreach (var m in status.Applied) await output.WriteLineAsync($"migration {m.Version:D4}_{m.Name} applied {m.AppliedAt:u}");
            await output.WriteLineAsync(status.Pending.Count == 0 ? "no pending migrations" : $"pending migrations: {string.Join(", ", status.Pending.Select(v => v.ToString("D4")))}");
            if (status.Catalogue is { } catalogue) await WriteCatalogueAsync(catalogue, output);
            return 0;
        });

        db.Subcommands.Add(migrate);
        db.Subcommands.Add(status);
        return db;
    }

    /// <summary>
    /// Catalogue counts, and the sizes search depends on against the buffer cache: with the HNSW index larger than
    /// shared_buffers, index pages come from the OS cache or disk and latency swings (docs/architecture.md, search at scale).
    /// </summary>
    private static async Task WriteCatalogueAsync(CatalogueStatus c, TextWriter output)
    {
        await output.WriteLineAsync(FormattableString.Invariant($"catalogue: {Counted.Of(c.Models, "model")}, scenes {c.Scenes}, {Counted.Of(c.Tiles, "tile", format: "N0")}"));
        var settings = c.Settings;
        await output.WriteLineAsync($"settings: shared_buffers {settings.SharedBuffers}, maintenance_work_mem {settings.MaintenanceWorkMem}, " +
            $"max_parallel_maintenance_workers {settings.MaxParallelMaintenanceWorkers}, autoprewarm {(settings.Autoprewarm ? "on (cached pages reloaded after a restart)" : "off")}");
        foreach (var r in c.Relations)
        {
            double size = r.Bytes, buffers = r.SharedBufferBytes;
            await output.WriteLineAsync(FormattableString.Invariant(
                $"{(r.IsTable ? "table" : "index")} {r.Name}: {size / 1048576:F1} MiB = {100 * size / buffers:F1} % of shared_buffers ({buffers / 1048576:F0} MiB){(size > buffers ? "; larger than the buffer cache: raise shared_buffers (docs/architecture.md, Search at scale)" : "")}"));
        }
        foreach (var p in c.Partitions)
            await output.WriteLineAsync(FormattableString.Invariant(
                $"model {p.ModelId}: partition {p.Table} {p.TableBytes / 1048576.0:F1} MiB ({p.RowsText}), graph ") +
                (p.Index is null ? "not built (searches of this model are exact until `rscapret db migrate` builds it)"
                    : FormattableString.Invariant($"{p.Index} {p.IndexBytes / 1048576.0:F1} MiB{(p.Valid ? "" : ", INVALID")}")));
    }
}
