using System.Text.Json;
using RsCapRet.Core;
using RsCapRet.Model.Tokenizers;

namespace RsCapRet.Model.Tests.Tokenizers;

public class LlamaTokenizerTests
{
    private static string Dir => Path.Combine(RepositoryPaths.SharedDirectory(), "fixtures", "tokenizer", "llama2");
    private static readonly Lazy<LlamaTextTokenizer> Tokenizer = new(() => LlamaTextTokenizer.Load(Path.Combine(Dir, "tokenizer.model")));

    public sealed record Case(string text, int[] ids, string[]? pieces, string decoded);
    private sealed record Expected(int vocab_size, int bos_id, int eos_id, Case[] cases);
    private static Expected Load() => JsonSerializer.Deserialize<Expected>(File.ReadAllText(Path.Combine(Dir, "expected.json")))!;

    public static TheoryData<int> CaseIndices()
    {
        var data = new TheoryData<int>();
        for (var i = 0; i < Load().cases.Length; i++) data.Add(i);
        return data;
    }

    [Theory]
    [MemberData(nameof(CaseIndices))]
    public void IdsPiecesAndDecodeMatchReferenceSentencePiece(int index)
    {
        var c = Load().cases[index];
        var tok = Tokenizer.Value;
        Assert.Equal(c.ids, tok.Encode(c.text));
        if (c.pieces != null) Assert.Equal(c.pieces, tok.Pieces(c.text));
        Assert.Equal(c.decoded, tok.Decode(c.ids));
        Assert.Equal(c.decoded, tok.Decode(tok.Encode(c.text)));
    }

    [Fact]
    public void SpecialIdsAndRetComeFromTheModel()
    {
        var e = Load();
        var tok = Tokenizer.Value;
        Assert.Equal(e.vocab_size, tok.BaseVocabSize);
        Assert.Equal(e.bos_id, tok.BosId);
        Assert.Equal(e.eos_id, tok.EosId);
        Assert.Equal(32000, tok.RetId);
        Assert.Equal(32001, tok.VocabSize);
        var retrieval = tok.EncodeForRetrieval("storage tanks");
        Assert.Equal(tok.BosId, retrieval[0]);
        Assert.Equal(tok.RetId, retrieval[^1]);
        var caption = tok.EncodeCaptionForTraining("a baseball field");
        Assert.Equal([tok.RetId, tok.EosId], caption.TakeLast(2));
        Assert.Equal("a baseball field", tok.Decode(caption));
    }

    [Fact]
    public void MissingOrCorruptModelFileIsNamed()
    {
        var missing = Path.Combine(Path.GetTempPath(), "no-tokenizer.model");
        Assert.Contains(missing, Assert.Throws<FileNotFoundException>(() => LlamaTextTokenizer.Load(missing)).Message);
        var junk = Path.GetTempFileName();
        File.WriteAllText(junk, "not a sentencepiece model");
        try { Assert.Contains(junk, Assert.Throws<InvalidDataException>(() => LlamaTextTokenizer.Load(junk)).Message); }
        finally { File.Delete(junk); }
    }
}
