using RsCapRet.Model.Checkpoints;
using static TorchSharp.torch;

namespace RsCapRet.Model.Tests;

public class ParityTests
{
    public static TheoryData<string> Cases => Fixtures.CasesIn(Fixtures.ParityRoot);

    [Theory]
    [MemberData(nameof(Cases))]
    public void VisionTowerReproducesReferenceOutputs(string fixture)
    {
        var dir = Path.Combine(Fixtures.ParityRoot, fixture);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var expected = Checkpoint.Open(Path.Combine(dir, "expected.safetensors"));
        using var vision = ClipVisionModel.FromPretrained(Path.Combine(dir, "clip-vision"));
        using var output = vision.Forward(expected.Read("vision.pixel_values"));
        Fixtures.AssertClose(output.LastHiddenState, expected.Read("vision.last_hidden_state"), $"{fixture} vision.last_hidden_state");
        Fixtures.AssertClose(output.PooledOutput, expected.Read("vision.pooler_output"), $"{fixture} vision.pooler_output");
        Fixtures.AssertClose(output.ImageEmbeds!, expected.Read("vision.image_embeds"), $"{fixture} vision.image_embeds");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void LlamaReproducesReferenceOutputs(string fixture)
    {
        var dir = Path.Combine(Fixtures.ParityRoot, fixture);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var expected = Checkpoint.Open(Path.Combine(dir, "expected.safetensors"));
        using var llm = LlamaForCausalLM.FromPretrained(Path.Combine(dir, "llama"));
        using var output = llm.Forward(expected.Read("llama.input_ids"));
        Fixtures.AssertClose(output.LastHiddenState, expected.Read("llama.last_hidden_state"), $"{fixture} llama.last_hidden_state");
        Fixtures.AssertClose(output.Logits, expected.Read("llama.logits"), $"{fixture} llama.logits");
    }
}
